// natbpf.1: commands and options from the App (describe_cli), the prose
// the App does not hold from here.
#include <map>
#include <sstream>

#include "cli/clidoc.h"

namespace natbpf {
namespace {

// One paragraph per command, after its one-line summary from the App.
const std::map<std::string, std::string>& command_prose() {
  static const std::map<std::string, std::string> prose{
      {"probe",
       "Checks, by loading and attaching, what the running kernel allows: fentry/fexit, kprobes, the "
       "skb:kfree_skb tracepoint with drop reasons, the nftables trace netlink stream, ctnetlink and the "
       "conntrack counters; then prints the attach plan every other command would use. Its output is the "
       "first thing a bug report should contain."},
      {"trace",
       "Tells one story per packet of the flow the options describe: each table, chain and rule it met, "
       "NAT before and after, near misses (rules and set elements that did not match), the routing result "
       "and the exact drop point with its evidence and a fix. It marks the flow with a rate-limited "
       "nftables trace rule in a table of its own, and with iptables-legacy in use also a rule without a "
       "target in the raw table whose TRACE line starts each traced packet; both are removed on exit."},
      {"clash",
       "Reports conntrack confirm clashes, one report per losing packet: loser and winner tuples, whether "
       "it was dropped or resolved, the NAT range, flags and rule, and a diagnosis (SNAT range exhausted, "
       "NAT port race, same-tuple race, stale entry, table full, chain too long) with the evidence it "
       "rests on; a summary every interval."},
      {"drops",
       "Counts every drop on the host in the kernel, across network namespaces, and ranks the causes. "
       "Netfilter drops come with the rules whose counters rose; drops outside netfilter are listed under "
       "\"not the firewall\" with the kernel's drop reason and a fix. With --prometheus it runs until "
       "SIGINT or SIGTERM and serves the counts on /metrics in the Prometheus text format "
       "(natbpf_drops_total by namespace, cause, table, chain, rule and reason; conntrack counters; "
       "natbpf_clashes_total with --clash), for a node agent such as deploy/daemonset.yaml."},
      {"explain",
       "Tells again, offline and without root, what a recording of natbpf trace, clash or drops (--record) "
       "found, exactly as the live run printed it. With --log it tells the per-packet stories of logs "
       "someone already saved: kernel log lines of iptables TRACE and conntrack INVALID, nft monitor trace "
       "output, NFLOG pcap captures or ulogd2 JSON, resolved against the rulesets saved beside them "
       "(--ruleset)."},
  };
  return prose;
}

// Text for a roff line: backslashes and minus signs escaped, and a line
// that would start with a control character ('.' or ') protected.
std::string roff(const std::string& text) {
  std::string out;
  for (char c : text) {
    if (c == '\\') out += "\\e";
    else if (c == '-') out += "\\-";
    else out += c;
  }
  if (!out.empty() && (out[0] == '.' || out[0] == '\'')) out.insert(0, "\\&");
  return out;
}

// ".TP" entry: bold names, italic value, then the description.
void option_entry(std::ostringstream& out, const OptionDoc& o) {
  out << ".TP\n";
  std::string names;
  for (const auto& n : o.names) names += (names.empty() ? "" : ", ") + roff(n);
  if (o.positional) out << ".I " << names << "\n";
  else if (o.metavar.empty()) out << ".B " << names << "\n";
  else out << ".BI \"" << names << " \" " << roff(o.metavar) << (o.repeatable ? " \" ...\"" : "") << "\n";
  out << roff(o.description) << "\n";
}

void synopsis(std::ostringstream& out, const CliDoc& doc) {
  out << ".SH SYNOPSIS\n";
  out << ".B " << doc.name << "\n.RB [ \\-\\-version ]\n.RB [ \\-h | \\-\\-help ]\n";
  for (const auto& c : doc.commands) {
    out << ".br\n.B " << doc.name << " " << c.name << "\n.RI [ options ]\n";
    for (const auto& o : c.options)
      if (o.positional) out << ".RI [ " << roff(o.names.front()) << " ]\n";
  }
}

void trailer(std::ostringstream& out) {
  out << ".SH \"EXIT STATUS\"\n"
         ".TP\n.B 0\nSuccess, also for \\-\\-help and \\-\\-version.\n"
         ".TP\n.B 1\nThe command failed at run time: a source of events, a recording or a log could not be "
         "read, or the kernel refused what was needed. The message says what to do.\n"
         ".TP\n.B 2\nUsage error: an unknown option or command, a malformed value, a missing argument, "
         "missing privileges (CAP_BPF and CAP_NET_ADMIN) or a kernel without BTF.\n";
  out << ".SH ENVIRONMENT\n"
         ".TP\n.B NATBPF_NO_FENTRY\nSet to anything but 0 or empty: as \\-\\-no\\-fentry, never use "
         "fentry/fexit programs.\n"
         ".TP\n.B NATBPF_NO_KPROBE\nSet to anything but 0 or empty: as \\-\\-no\\-kprobe, never use kprobes.\n"
         ".TP\n.B NATBPF_LIBBPF_DEBUG\nSet (to anything): print libbpf's own messages, for debugging "
         "attach failures.\n";
  out << ".SH FILES\n"
         ".TP\n.I /run/natbpf\nThe values of sysctls a run changes (such as net.netfilter.nf_log.*), kept "
         "until it restores them; a killed run's values are given back by the next run.\n"
         ".TP\n.I /run/netns\nThe named network namespaces \\-\\-netns NAME refers to (ip netns).\n";
  out << ".SH \"SEE ALSO\"\n.BR nft (8),\n.BR iptables (8),\n.BR conntrack (8),\n.BR ip\\-netns (8)\n";
}

}  // namespace

Result<std::string> man_page(const CliDoc& doc) {
  std::ostringstream out;
  out << ".\\\" Generated by natbpf-clidoc from the natbpf command line: do not edit.\n";
  out << ".TH NATBPF 1 \"\" \"" << doc.name << " " << doc.version << "\" \"User Commands\"\n";
  out << ".nh\n.ad l\n";  // option names in the prose must not be hyphenated
  std::string summary = doc.description;
  if (summary.rfind(doc.name + ": ", 0) == 0) summary.erase(0, doc.name.size() + 2);
  out << ".SH NAME\n" << doc.name << " \\- " << roff(summary) << "\n";
  synopsis(out, doc);
  out << ".SH DESCRIPTION\n"
      << roff(doc.name) << " tells why a connection through Linux NAT failed: which netfilter hook, table, "
      << "chain and rule a packet met, what NAT and conntrack did to it, and where and why it was dropped. "
      << "CO\\-RE eBPF programs on the netfilter core (fentry/fexit, kprobes or tracepoints, chosen at run "
      << "time) are merged with the nftables trace stream and conntrack netlink. The live commands need "
      << "root; explain does not.\n";
  out << ".SH OPTIONS\n";
  for (const auto& o : doc.options) option_entry(out, o);
  out << ".SH COMMANDS\n";
  for (const auto& c : doc.commands) {
    auto prose = command_prose().find(c.name);
    if (prose == command_prose().end())
      return Error{"the man page has no description of command '" + c.name + "'",
                   "add a paragraph for it to command_prose() in src/cli/clidoc_man.cpp"};
    out << ".SS \"" << doc.name << " " << c.name << "\"\n" << roff(c.summary) << ".\n.PP\n" << roff(prose->second) << "\n";
    for (const auto& o : c.options) option_entry(out, o);
  }
  trailer(out);
  return out.str();
}

}  // namespace natbpf
