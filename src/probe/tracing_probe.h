// Whether a tracing program (fentry, fexit, tp_btf) loads and attaches to a
// kernel BTF id, asked with a two-instruction program straight through
// bpf(BPF_PROG_LOAD). libbpf's bpf_program__set_attach_target would parse
// vmlinux BTF once more for every question (5.5 MB on 6.18, and twice that
// while libbpf copies it), next to the copy the plan already holds: that was
// natbpf's peak memory. The plan finds the BTF id in its own copy.
#pragma once

#include <initializer_list>
#include <string>

namespace natbpf {

enum class TracingKind { Fentry, Fexit, TpBtf };

// Where the attach target is: a type id in vmlinux BTF (module empty) or in
// the split BTF of a module (/sys/kernel/btf/MODULE).
struct BtfTarget {
  int type_id = 0;
  std::string module;
};

struct TracingProbe {
  int load_errno = 0;    // bpf(BPF_PROG_LOAD) refused: EPERM (lockdown, an LSM), EINVAL, ...
  int attach_errno = 0;  // loaded, but attaching refused
  bool ok() const { return load_errno == 0 && attach_errno == 0; }
};

// Loads one empty program of each kind in `kinds` for `target`, attaches
// them all at once (a pair of fentry+fexit shares one trampoline), and
// detaches and unloads them. The first failure is reported.
TracingProbe probe_tracing(std::initializer_list<TracingKind> kinds, const BtfTarget& target);

}  // namespace natbpf
