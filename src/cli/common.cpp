#include <cstdlib>
#include <filesystem>
#include <string>

#include "cli/commands.h"
#include "cli/version.h"
#include "probe/features.h"

namespace natbpf {

Status check_privileges_and_btf() {
  KernelFeatures features;
  auto caps = features.capabilities();
  bool bpf = caps["CAP_BPF"] || caps["CAP_SYS_ADMIN"];
  if (!bpf || !caps["CAP_NET_ADMIN"])
    return usage_error("natbpf needs CAP_BPF and CAP_NET_ADMIN", "run it as root");
  if (!features.has_vmlinux_btf())
    return Error{"this kernel has no BTF (/sys/kernel/btf/vmlinux is missing)",
                 "boot a kernel built with CONFIG_DEBUG_INFO_BTF=y (Debian, Ubuntu and RHEL kernels have it)", 2};
  return Ok{};
}

void add_attach_flags(CLI::App* cmd, PlanRequest& request) {
  cmd->add_flag("--no-fentry", request.no_fentry, "never use fentry/fexit (use kprobes or tracepoints)");
  cmd->add_flag("--no-kprobe", request.no_kprobe, "never use kprobes");
}

void apply_attach_env(PlanRequest& request) {
  auto set = [](const char* name) {
    const char* v = std::getenv(name);
    return v && std::string(v) != "0" && std::string(v) != "";
  };
  request.no_fentry |= set("NATBPF_NO_FENTRY");
  request.no_kprobe |= set("NATBPF_NO_KPROBE");
}

BuildInfo build_info() { return {NATBPF_VERSION, git_revision()}; }

}  // namespace natbpf
