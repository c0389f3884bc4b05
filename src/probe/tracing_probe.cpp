#include "probe/tracing_probe.h"

#include <bpf/bpf.h>
#include <linux/bpf.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "util/fd.h"

namespace natbpf {
namespace {

// The kernel's BTF object of a module (by name), as a file descriptor for
// attach_btf_obj_fd: module type ids are only unique together with it.
Fd module_btf_fd(const std::string& module) {
  __u32 id = 0;
  while (bpf_btf_get_next_id(id, &id) == 0) {
    Fd fd(bpf_btf_get_fd_by_id(id));
    if (fd.get() < 0) continue;  // gone meanwhile
    char name[64] = {};
    bpf_btf_info info{};
    info.name = reinterpret_cast<__u64>(name);
    info.name_len = sizeof(name);
    __u32 len = sizeof(info);
    if (bpf_obj_get_info_by_fd(fd.get(), &info, &len) == 0 && info.kernel_btf && module == name) return fd;
  }
  return Fd();
}

bpf_attach_type attach_type(TracingKind kind) {
  switch (kind) {
    case TracingKind::Fentry: return BPF_TRACE_FENTRY;
    case TracingKind::Fexit: return BPF_TRACE_FEXIT;
    case TracingKind::TpBtf: return BPF_TRACE_RAW_TP;
  }
  return BPF_TRACE_FENTRY;
}

}  // namespace

TracingProbe probe_tracing(std::initializer_list<TracingKind> kinds, const BtfTarget& target) {
  TracingProbe result;
  Fd module_fd;
  if (!target.module.empty()) {
    module_fd = module_btf_fd(target.module);
    if (module_fd.get() < 0) {
      result.load_errno = ENOENT;  // the module was unloaded since its BTF was read
      return result;
    }
  }
  // r0 = 0; exit
  const bpf_insn insns[] = {
      {.code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = BPF_REG_0, .src_reg = 0, .off = 0, .imm = 0},
      {.code = BPF_JMP | BPF_EXIT, .dst_reg = 0, .src_reg = 0, .off = 0, .imm = 0},
  };
  std::vector<Fd> progs, links;
  for (TracingKind kind : kinds) {
    bpf_prog_load_opts opts{};
    opts.sz = sizeof(opts);
    opts.expected_attach_type = attach_type(kind);
    opts.attach_btf_id = static_cast<__u32>(target.type_id);
    opts.attach_btf_obj_fd = module_fd.get() < 0 ? 0 : static_cast<__u32>(module_fd.get());
    int fd = bpf_prog_load(BPF_PROG_TYPE_TRACING, "natbpf_probe", "Dual BSD/GPL", insns, 2, &opts);
    if (fd < 0) {
      result.load_errno = -fd;
      return result;
    }
    progs.emplace_back(fd);
  }
  for (const auto& prog : progs) {
    int fd = bpf_raw_tracepoint_open(nullptr, prog.get());
    if (fd < 0) {
      result.attach_errno = -fd;
      return result;
    }
    links.emplace_back(fd);
  }
  return result;  // links, then programs, closed here: detached and unloaded
}

}  // namespace natbpf
