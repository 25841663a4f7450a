#include "loom/comm/call_signature.hpp"

#include <cstring>

#include "loom/core/check.hpp"
#include "loom/core/checksum.hpp"

namespace loom::comm {

CallSignature make_signature(int64_t seq, const char* kind, const Collective& c, Algo algo,
                             const std::vector<int>& members) {
  CallSignature s{};
  s.seq = seq;
  std::strncpy(s.kind, kind, sizeof s.kind - 1);
  s.count = c.count;
  s.dtype = static_cast<int32_t>(c.dtype);
  s.op = static_cast<int32_t>(c.op);
  s.root = c.root;
  s.algo = static_cast<int32_t>(algo);
  s.group = fnv1a64(members.data(), members.size() * sizeof(int));
  return s;
}

std::string describe(const CallSignature& s) {
  const std::string kind(s.kind, strnlen(s.kind, sizeof s.kind));
  return detail::concat("#", s.seq, " ", kind, "(", s.count, " x ",
                        name(static_cast<DType>(s.dtype)), ", ", name(static_cast<ReduceOp>(s.op)),
                        ", root ", s.root, ", ", name(static_cast<Algo>(s.algo)), ", group ",
                        hex64(s.group).substr(0, 8), ")");
}

std::string describe_mismatch(const std::vector<CallSignature>& all, const std::vector<int>& members) {
  bool same = true;
  for (const auto& s : all) same = same && std::memcmp(&s, &all[0], sizeof s) == 0;
  if (same) return "";
  std::string out;
  for (size_t r = 0; r < all.size(); ++r)
    out += detail::concat(r ? "; " : "", "rank ", members[r], " called ", describe(all[r]));
  return out;
}

}  // namespace loom::comm
