// cxx_prog.cc - a small deterministic C++17 workload for tests/real_programs.sh.
//
// Exercises the C++ allocation paths of the preload (operator new/delete,
// including the over-aligned variants), exception objects, shared_ptr control
// blocks, and cross-thread frees. Everything printed is independent of
// addresses, of thread scheduling and of hash-table iteration order, so the
// output is identical across runs and allocators.
#include <cstdint>
#include <cstdio>
#include <map>
#include <memory>
#include <new>
#include <stdexcept>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

namespace {

struct Digest {
  std::uint64_t h = 1469598103934665603ull;  // FNV-1a 64
  void bytes(const void *p, std::size_t n) {
    const unsigned char *c = static_cast<const unsigned char *>(p);
    for (std::size_t i = 0; i < n; i++) {
      h ^= c[i];
      h *= 1099511628211ull;
    }
  }
  void u64(std::uint64_t v) { bytes(&v, sizeof v); }
  void str(const std::string &s) {
    u64(s.size());
    bytes(s.data(), s.size());
  }
};

// Deterministic pseudo-random numbers (no std::random_device).
struct Lcg {
  std::uint64_t s;
  explicit Lcg(std::uint64_t seed) : s(seed) {}
  std::uint32_t next() {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    return static_cast<std::uint32_t>(s >> 33);
  }
};

struct alignas(64) Aligned {
  double v[8];
  std::uint64_t tag;
  explicit Aligned(std::uint64_t t) : tag(t) {
    for (int i = 0; i < 8; i++) v[i] = static_cast<double>(t) * 0.5 + i;
  }
};

struct Node {
  std::string name;
  std::vector<std::shared_ptr<Node>> children;
  explicit Node(std::string n) : name(std::move(n)) {}
};

std::uint64_t tree_digest(const std::shared_ptr<Node> &n, Digest &d) {
  d.str(n->name);
  std::uint64_t count = 1;
  for (const auto &c : n->children) count += tree_digest(c, d);
  return count;
}

std::string make_word(Lcg &r) {
  std::string s;
  std::size_t len = 3 + r.next() % 40;  // past the SSO limit half of the time
  for (std::size_t i = 0; i < len; i++) s.push_back(static_cast<char>('a' + r.next() % 26));
  return s;
}

// One thread's work; the result is handed back to the main thread, which
// frees it (memory allocated in one thread, freed in another).
struct ThreadResult {
  std::uint64_t digest = 0;
  std::size_t words = 0, distinct = 0;
  std::shared_ptr<std::vector<std::string>> kept;
};

void worker(int id, ThreadResult *out) {
  Lcg r(1000 + static_cast<std::uint64_t>(id));
  std::vector<std::string> words;
  std::unordered_map<std::string, int> freq;
  std::map<std::string, int> ordered;
  for (int round = 0; round < 6; round++) {
    words.clear();
    words.shrink_to_fit();
    for (int i = 0; i < 6000; i++) words.push_back(make_word(r) + std::to_string(i % 50));
    for (const auto &w : words) freq[w.substr(0, 4)]++;
    for (int i = 0; i < 300; i++) ordered[words[r.next() % words.size()]] += i;
  }
  Digest d;
  for (const auto &kv : ordered) {  // ordered iteration: deterministic
    d.str(kv.first);
    d.u64(static_cast<std::uint64_t>(kv.second));
  }
  std::uint64_t fsum = 0;  // order-independent summary of the hash map
  for (const auto &kv : freq) {
    Digest k;
    k.str(kv.first);
    fsum += k.h * static_cast<std::uint64_t>(kv.second);
  }
  d.u64(fsum);
  out->digest = d.h;
  out->words = words.size();
  out->distinct = freq.size();
  out->kept = std::make_shared<std::vector<std::string>>(words.begin(), words.begin() + 1000);
}

int g_handler_calls = 0;
void throwing_handler() {
  g_handler_calls++;
  throw std::bad_alloc();
}

// [new.delete.single]: a nothrow operator new returns nullptr when the
// new_handler throws bad_alloc; the throwing ones let it through.
void out_of_memory() {
  // Above PTRDIFF_MAX: refused by every allocator (PTRDIFF_MAX itself, 2 GiB on
  // a 32-bit target, glibc's malloc can serve there).
  // (volatile: the compiler would warn of a size beyond any object).
  volatile std::size_t huge_v = static_cast<std::size_t>(PTRDIFF_MAX) + 1;
  const std::size_t huge = huge_v;
  std::new_handler old = std::set_new_handler(throwing_handler);
  int nulls = 0, thrown = 0;
  nulls += ::operator new(huge, std::nothrow) == nullptr;
  nulls += ::operator new[](huge, std::nothrow) == nullptr;
  nulls += ::operator new(huge, std::align_val_t(64), std::nothrow) == nullptr;
  nulls += ::operator new[](huge, std::align_val_t(64), std::nothrow) == nullptr;
  try {
    void *p = ::operator new(huge);
    ::operator delete(p);
  } catch (const std::bad_alloc &) {
    thrown++;
  }
  try {
    void *p = ::operator new(huge, std::align_val_t(64));
    ::operator delete(p, std::align_val_t(64));
  } catch (const std::bad_alloc &) {
    thrown++;
  }
  std::set_new_handler(old);
  std::printf(
      "out of memory: %d of 4 nothrow calls returned nullptr, %d of 2 threw bad_alloc, handler called %d times\n",
      nulls, thrown, g_handler_calls);
}

}  // namespace

int main() {
  Digest total;

  // vectors and strings
  Lcg r(42);
  std::vector<std::string> v;
  for (int i = 0; i < 20000; i++) v.push_back(make_word(r));
  std::size_t chars = 0;
  for (const auto &s : v) chars += s.size();
  std::string joined;
  for (int i = 0; i < 2000; i++) joined += v[static_cast<std::size_t>(i)];
  total.str(joined);
  std::printf("vector: %zu strings, %zu chars, joined %zu\n", v.size(), chars, joined.size());

  // map / unordered_map
  std::map<std::string, std::size_t> m;
  std::unordered_map<std::uint32_t, std::string> um;
  for (std::size_t i = 0; i < v.size(); i++) {
    m[v[i]] += i;
    um[static_cast<std::uint32_t>(i * 2654435761u)] = v[i];
  }
  for (const auto &kv : m) {
    total.str(kv.first);
    total.u64(kv.second);
  }
  std::uint64_t usum = 0;
  for (std::uint32_t i = 0; i < 20000; i++) usum += um.at(i * 2654435761u).size() * i;
  total.u64(usum);
  std::printf("map: %zu keys, first %s, last %s; unordered_map: %zu keys, sum %llu\n", m.size(),
              m.begin()->first.c_str(), m.rbegin()->first.c_str(), um.size(), static_cast<unsigned long long>(usum));

  // shared_ptr tree
  auto root = std::make_shared<Node>("root");
  std::vector<std::shared_ptr<Node>> level{root};
  for (int depth = 0; depth < 4; depth++) {
    std::vector<std::shared_ptr<Node>> next;
    for (const auto &n : level)
      for (int c = 0; c < 6; c++) {
        auto child = std::shared_ptr<Node>(new Node(n->name + "/" + std::to_string(c)));
        n->children.push_back(child);
        next.push_back(child);
      }
    level.swap(next);
  }
  std::weak_ptr<Node> weak = level.front();
  Digest td;
  std::uint64_t nodes = tree_digest(root, td);
  total.u64(td.h);
  level.clear();
  root.reset();
  std::printf("shared_ptr tree: %llu nodes, expired after reset: %s\n", static_cast<unsigned long long>(nodes),
              weak.expired() ? "yes" : "no");

  // exceptions
  int caught = 0;
  std::string last_what;
  for (int i = 0; i < 500; i++) {
    try {
      if (i % 3 == 0) throw std::runtime_error("failure number " + std::to_string(i) + std::string(100, 'x'));
      std::vector<int> big(static_cast<std::size_t>(i) * 10, i);
      total.u64(big.size());
    } catch (const std::runtime_error &e) {
      caught++;
      last_what = std::string(e.what()).substr(0, 19);
    }
  }
  total.str(last_what);
  std::printf("exceptions: caught %d, last \"%s\"\n", caught, last_what.c_str());

  // over-aligned objects through new/delete (operator new(size_t, align_val_t))
  std::vector<Aligned *> al;
  int misaligned = 0;
  for (int i = 0; i < 3000; i++) {
    Aligned *a = new Aligned(static_cast<std::uint64_t>(i));
    if (reinterpret_cast<std::uintptr_t>(a) % alignof(Aligned) != 0) misaligned++;
    al.push_back(a);
    if (i % 4 == 3) {  // free some early to fragment
      delete al[static_cast<std::size_t>(i) - 2];
      al[static_cast<std::size_t>(i) - 2] = nullptr;
    }
  }
  double asum = 0;
  for (Aligned *a : al)
    if (a) {
      asum += a->v[7] + static_cast<double>(a->tag);
      delete a;
    }
  Aligned *arr = new Aligned[17]{Aligned(1),  Aligned(2),  Aligned(3),  Aligned(4),  Aligned(5),  Aligned(6),
                                 Aligned(7),  Aligned(8),  Aligned(9),  Aligned(10), Aligned(11), Aligned(12),
                                 Aligned(13), Aligned(14), Aligned(15), Aligned(16), Aligned(17)};
  if (reinterpret_cast<std::uintptr_t>(arr) % alignof(Aligned) != 0) misaligned++;
  asum += arr[16].v[0];
  delete[] arr;
  total.u64(static_cast<std::uint64_t>(asum));
  std::printf("alignas(64): alignof %zu, misaligned %d, sum %.1f\n", alignof(Aligned), misaligned, asum);

  // threads
  std::vector<ThreadResult> res(4);
  std::vector<std::thread> th;
  for (int i = 0; i < 4; i++) th.emplace_back(worker, i, &res[static_cast<std::size_t>(i)]);
  for (auto &t : th) t.join();
  for (int i = 0; i < 4; i++) {
    const ThreadResult &t = res[static_cast<std::size_t>(i)];
    total.u64(t.digest);
    std::printf("thread %d: %zu words, %zu prefixes, digest %016llx, kept %zu\n", i, t.words, t.distinct,
                static_cast<unsigned long long>(t.digest), t.kept->size());
  }
  res.clear();  // the threads' vectors are freed here, by the main thread

  out_of_memory();
  std::printf("digest %016llx\n", static_cast<unsigned long long>(total.h));
  return misaligned == 0 ? 0 : 1;
}
