// The text renderer of trace stories: one story per packet, colour on a TTY.
// Each story is appended to the caller's buffer piece by piece (a saved log
// tells millions of steps): no stream, no temporary strings per step.
#include <string_view>

#include "output/trace_render.h"
#include "util/names.h"
#include "util/text.h"

namespace natbpf {
namespace {

// text in a column of `width`, as std::setw(width) pads it: on the left
// (std::left) or on the right.
void column(std::string& out, std::string_view text, size_t width, bool left = true) {
  if (!left && text.size() < width) out.append(width - text.size(), ' ');
  out += text;
  if (left && text.size() < width) out.append(width - text.size(), ' ');
}

void quoted(std::string& out, std::string_view text) {
  out += '"';
  out += text;
  out += '"';
}

class TextRenderer : public TraceRenderer {
 public:
  explicit TextRenderer(bool colour) : colour_(colour) {}

  void packet(const Journey& j, std::string& out) override {
    paint(out, "1") += "packet ";
    append_number(out, j.number);
    unpaint(out);
    if (j.trace_id) out += "  trace " + hex_id(j.trace_id);
    out += "  ";
    out += j.packet.family ? j.packet.str() : "?";
    if (!j.iif_name.empty()) out += "  iif " + j.iif_name;
    if (j.repeat_of) {
      out += "  repeat of packet ";
      append_number(out, *j.repeat_of);
      out += " (same flow, flags and path): ";
      if (j.drop) unpaint(paint(out, "1;31") += "dropped again");
      else out += fate_str(j.fate);
      out += '\n';
      return;
    }
    out += '\n';
    step_lines(j, out);
    // The columns below are padded on the left as the step lines left the
    // stream this renderer once wrote to: on the right when there were none.
    facts(j, out, !j.steps.empty());
    fate(j, out);
    if (j.repeats) {
      out += "  (";
      append_number(out, j.repeats);
      out += j.repeats > 1 ? " retransmissions followed)\n" : " retransmission followed)\n";
    }
    out += "  why: " + j.explanation + "\n";
    if (j.fix) {
      out += "  ";
      unpaint(paint(out, "1") += "fix:");
      out += ' ';
      if (!j.fix->netns.empty()) out += "ip netns exec " + j.fix->netns + " ";
      out += j.fix->command + "\n";
    }
  }

  std::string summary(const TraceCounters& c, const std::string& plan_summary) override {
    std::string o;
    unpaint(paint(o, "1") += "summary");
    o += ": " + std::to_string(c.packets) + " packets (" + std::to_string(c.retransmissions) + " repeats), " +
         std::to_string(c.dropped) + " dropped, " + std::to_string(c.accepted) + " accepted, " +
         std::to_string(c.unknown) + " without verdict\n";
    for (const auto& [point, n] : c.drop_points) o += "  " + std::to_string(n) + "x DROPPED " + point + "\n";
    o += "  lost events: nftrace " + std::to_string(c.nftrace_lost) + " overruns, bpf " + std::to_string(c.bpf_lost) +
         "; parse errors " + std::to_string(c.nftrace_parse_errors + c.bpf_decode_errors) + "\n";
    if (c.nftrace_lost || c.bpf_lost) o += "  some stories may be incomplete: events were lost\n";
    o += "  " + plan_summary + "\n";
    return o;
  }

 private:
  // The lines of the steps and their NAT: columns padded as std::left with
  // std::setw(n) pads them.
  static void step_lines(const Journey& j, std::string& out) {
    std::string where;
    for (const auto& s : j.steps) {
      where.clear();
      where += family_name(s.family);
      where += ' ';
      where += s.table;
      where += ' ';
      where += s.chain;
      out += "  ";
      column(out, s.hook.empty() ? "-" : s.hook, 12);
      column(out, where, 30);
      out += ' ';
      size_t verdict_at = out.size();
      s.append_verdict(out);
      if (size_t n = out.size() - verdict_at; n < 22) out.append(22 - n, ' ');
      if (s.handle || !s.rule.empty()) {
        out += " rule ";
        quoted(out, s.handle && s.rule.empty() ? "?" : s.rule);
      }
      if (s.handle) {
        out += " (handle ";
        append_number(out, *s.handle);
        out += ')';
      }
      if (!s.log_ref.empty()) {
        out += " [";
        out += s.log_ref;
        out += ']';
      }
      out += '\n';
      for (const auto& n : j.nat) {
        if (n.handle != s.handle || n.table_chain != where) continue;
        out += "  ";
        column(out, "nat", 12);
        out += n.kind + " " + (n.from.empty() ? "?" : n.from) + " → " + (n.to.empty() ? "?" : n.to) + " (rule ";
        quoted(out, n.rule);
        out += "; " + n.evidence + ")\n";
      }
    }
  }

  // NAT without a rule, conntrack, near misses, marks, INVALID, listeners.
  static void facts(const Journey& j, std::string& out, bool left) {
    auto label = [&](std::string_view name) {
      out += "  ";
      column(out, name, 12, left);
    };
    for (const auto& n : j.nat) {
      if (!n.rule.empty()) continue;  // shown after its rule above
      label("nat");
      out += n.kind + " " + n.from + " → " + n.to + " (" + n.evidence + ")\n";
    }
    if (j.ct_id || j.ct_state) {
      label("conntrack");
      out += "id " + (j.ct_id ? std::to_string(*j.ct_id) : "?") + ", state " +
             (j.ct_state ? ct_state_str(*j.ct_state) : "?") + ", status " +
             (j.ct_status ? status_names(*j.ct_status) : "?") + " (nftrace)\n";
    }
    for (const auto& m : j.near_misses) {
      label("near miss");
      out += "rule " + quote(m.rule) + " (handle " + std::to_string(m.handle) + "): " + m.why + "\n";
    }
    for (const auto& m : j.mark_origins) {
      label("mark");
      out += m.mark + " set by rule " + quote(m.set_by) + " in " + m.set_in;
      if (!m.reached_by.empty()) out += ", reached from rule " + quote(m.reached_by);
      if (!m.comment.empty()) out += " (" + m.comment + ")";
      out += '\n';
    }
    if (j.invalid) {
      label("invalid");
      out += (j.invalid->reason.empty() ? "conntrack logged no reason" : j.invalid->reason) + " (" +
             j.invalid->evidence + ")\n";
    }
    for (const auto& l : j.listeners) {
      label("listening");
      out += l.address;
      if (l.pid) out += " by " + l.comm + " (pid " + std::to_string(l.pid) + ")";
      out += " (port collision)\n";
    }
  }

  void fate(const Journey& j, std::string& out) const {
    if (j.drop) {
      out += "  ";
      unpaint(paint(out, "1;31") += "DROPPED " + drop_point_str(*j.drop));
      if (!j.drop->evidence.empty()) {
        out += "  [";
        size_t start = out.size();  // joined as before: a separator only after text
        for (const auto& e : j.drop->evidence) {
          if (out.size() > start) out += "; ";
          out += e;
        }
        out += ']';
      }
      out += '\n';
    } else if (j.fate == Fate::Forwarded || j.fate == Fate::Sent) {
      out += "  ";
      unpaint(paint(out, "32") += std::string(j.fate == Fate::Sent ? "SENT" : "FORWARDED") + " out of " +
                                  (j.oif_name.empty() ? "?" : j.oif_name));
      if (j.final_packet) out += "  as " + j.final_packet->str();
      out += '\n';
    } else if (j.fate == Fate::Local) {
      out += "  ";
      unpaint(paint(out, "32") += "DELIVERED locally");
      out += '\n';
    } else if (j.from_log) {
      out += "  no verdict in the log\n";
    } else {
      out += "  no verdict seen (the packet left nftables' view without a drop)\n";
    }
  }

  // paint(out, code) += text; unpaint(out): text in colour on a TTY.
  std::string& paint(std::string& out, const char* code) const {
    if (colour_) out += std::string("\033[") + code + "m";
    return out;
  }
  std::string& unpaint(std::string& out) const {
    if (colour_) out += "\033[0m";
    return out;
  }
  bool colour_;
};

}  // namespace

std::unique_ptr<TraceRenderer> make_text_renderer(bool colour) { return std::make_unique<TextRenderer>(colour); }

}  // namespace natbpf
