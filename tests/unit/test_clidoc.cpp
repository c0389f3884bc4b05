// The man page and the completions list every command and every option the
// App (build_cli) defines, and they parse: groff without warnings, bash -n,
// and the bash completion offers what it should when bash runs it.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <set>

#include "cli/cli.h"
#include "cli/clidoc.h"
#include "cli/job.h"
#include "journey/log_replay.h"
#include "temp_file.h"

using namespace natbpf;

namespace {

struct Cli {
  CLI::App app;
  CommandContext ctx;
  Cli() { build_cli(app, ctx); }
  std::vector<const CLI::App*> commands() const { return app.get_subcommands([](const CLI::App*) { return true; }); }
};

// Every name of every option of app, read from CLI11 directly (not through
// describe_cli, which is under test too): "-h", "--proto".
std::set<std::string> app_option_names(const CLI::App& app) {
  std::set<std::string> out;
  for (const CLI::Option* opt : app.get_options()) {
    for (const auto& s : opt->get_snames()) out.insert("-" + s);
    for (const auto& l : opt->get_lnames()) out.insert("--" + l);
  }
  return out;
}

std::string roff_name(std::string name) {
  std::string out;
  for (char c : name) out += c == '-' ? std::string("\\-") : std::string(1, c);
  return out;
}

// An option entry of the man page names it: ".B \-\-json", ".B \-h, \-\-help",
// ".BI "\-\-proto " tcp|udp|icmp".
bool has_entry(const std::string& section, const std::string& name) {
  for (const char* before : {"\n.B ", "\n.BI \"", ", "})
    for (const char* after : {"\n", ",", " \""})
      if (section.find(before + roff_name(name) + after) != std::string::npos) return true;
  return false;
}

struct Shell {
  int status = -1;
  std::string out;
};

// sh -c command; stdout (and stderr, with 2>&1 in the command) captured.
Shell run(const std::string& command) {
  Shell r;
  FILE* p = popen(command.c_str(), "r");
  if (!p) return r;
  char buf[4096];
  for (size_t n; (n = fread(buf, 1, sizeof buf, p)) > 0;) r.out.append(buf, n);
  int st = pclose(p);
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return r;
}

std::string write_temp(const std::string& text) {
  std::string path = temp_path();
  std::ofstream(path) << text;
  return path;
}

std::string quote(const std::string& word) { return "'" + word + "'"; }

// What the generated bash completion offers for the command line words
// (the last one being completed), as bash itself computes it.
std::set<std::string> bash_complete(const std::string& script, const std::vector<std::string>& words) {
  std::string cmd = "bash --norc --noprofile -c 'source \"$0\" || exit 9; COMP_WORDS=(\"$@\"); COMP_CWORD=$(($# - 1)); "
                    "_natbpf; printf \"%s\\n\" \"${COMPREPLY[@]}\"' " + script;
  for (const auto& w : words) cmd += " " + quote(w);
  Shell r = run(cmd);
  EXPECT_EQ(r.status, 0) << cmd;
  std::set<std::string> out;
  size_t start = 0;
  for (size_t nl; (nl = r.out.find('\n', start)) != std::string::npos; start = nl + 1)
    if (nl > start) out.insert(r.out.substr(start, nl - start));
  return out;
}

// The man page's text from the .SS header of command name to the next section.
std::string man_section(const std::string& man, const std::string& header) {
  size_t at = man.find(header);
  if (at == std::string::npos) return "";
  size_t end = man.find("\n.S", at + header.size());
  return man.substr(at, end == std::string::npos ? std::string::npos : end - at);
}

}  // namespace

TEST(Clidoc, DescribesEveryCommandAndOption) {
  Cli cli;
  CliDoc doc = describe_cli(cli.app);
  EXPECT_EQ(doc.name, "natbpf");
  ASSERT_EQ(doc.commands.size(), cli.commands().size());
  for (size_t i = 0; i < doc.commands.size(); i++) {
    std::set<std::string> names;
    for (const auto& o : doc.commands[i].options)
      for (const auto& n : o.names)
        if (!o.positional) names.insert(n);
    EXPECT_EQ(names, app_option_names(*cli.commands()[i])) << doc.commands[i].name;
  }
  auto find = [&](const std::string& cmd, const std::string& name) -> const OptionDoc* {
    for (const auto& c : doc.commands)
      for (const auto& o : c.options)
        if (c.name == cmd && std::find(o.names.begin(), o.names.end(), name) != o.names.end()) return &o;
    return nullptr;
  };
  for (auto [cmd, name] : {std::pair{"trace", "--proto"}, {"trace", "--json"}, {"trace", "--record"},
                           {"drops", "--netns"}, {"trace", "--dport"}, {"explain", "--log"}, {"explain", "--top"},
                           {"explain", "file"}})
    ASSERT_TRUE(find(cmd, name)) << cmd << " " << name;
  EXPECT_EQ(find("trace", "--proto")->choices, (std::vector<std::string>{"tcp", "udp", "icmp"}));
  EXPECT_EQ(find("trace", "--json")->kind, ValueKind::none);
  EXPECT_EQ(find("trace", "--record")->kind, ValueKind::file);
  EXPECT_EQ(find("drops", "--netns")->kind, ValueKind::netns);
  EXPECT_EQ(find("trace", "--dport")->kind, ValueKind::other);
  EXPECT_TRUE(find("explain", "--log")->repeatable);
  EXPECT_FALSE(find("explain", "--top")->repeatable);
  EXPECT_TRUE(find("explain", "file")->positional);
}

// The words a completion offers for --proto and --format are the ones the
// commands accept, and no others.
TEST(Clidoc, ChoicesAreWhatTheCommandsAccept) {
  Cli cli;
  CliDoc doc = describe_cli(cli.app);
  auto choices = [&](const std::string& cmd, const std::string& name) {
    for (const auto& c : doc.commands)
      for (const auto& o : c.options)
        if (c.name == cmd && o.names.back() == name) return std::set<std::string>(o.choices.begin(), o.choices.end());
    return std::set<std::string>{};
  };
  for (std::string p : {"tcp", "udp", "icmp", "sctp", "TCP"}) {
    EXPECT_EQ(choices("trace", "--proto").count(p) == 1, parse_proto(p, true).ok()) << p;
    EXPECT_EQ(choices("clash", "--proto").count(p) == 1, parse_proto(p, false).ok()) << p;
  }
  for (std::string f : {"auto", "kernel", "nft", "pcap", "ulogd", "syslog", "json"})
    EXPECT_EQ(choices("explain", "--format").count(f) == 1, parse_log_format(f).ok()) << f;
}

TEST(Clidoc, ManPageHasEveryOptionAndParses) {
  Cli cli;
  auto man = man_page(describe_cli(cli.app));
  ASSERT_TRUE(man.ok()) << man.error().to_string();
  std::string options = man_section(*man, ".SH OPTIONS");
  for (const auto& n : app_option_names(cli.app)) EXPECT_TRUE(has_entry(options, n)) << n;
  for (const CLI::App* c : cli.commands()) {
    std::string section = man_section(*man, ".SS \"natbpf " + c->get_name() + "\"");
    ASSERT_FALSE(section.empty()) << c->get_name();
    for (const auto& n : app_option_names(*c)) EXPECT_TRUE(has_entry(section, n)) << c->get_name() << " " << n;
  }
  for (const char* s : {".SH NAME", ".SH SYNOPSIS", ".SH DESCRIPTION", ".SH \"EXIT STATUS\"", ".SH ENVIRONMENT",
                        "NATBPF_NO_FENTRY", "NATBPF_NO_KPROBE", ".SH FILES", "/run/natbpf", ".SH \"SEE ALSO\"",
                        ".BR nft (8)", ".BR iptables (8)", ".BR conntrack (8)"})
    EXPECT_NE(man->find(s), std::string::npos) << s;
  std::string path = write_temp(*man);
  Shell groff = run("groff -man -ww -z " + path + " 2>&1");
  EXPECT_EQ(groff.status, 0);
  EXPECT_EQ(groff.out, "") << "groff warnings";
  std::remove(path.c_str());
}

TEST(Clidoc, ManPageNeedsProseForEveryCommand) {
  Cli cli;
  cli.app.add_subcommand("frobnicate", "a command nobody documented");
  auto man = man_page(describe_cli(cli.app));
  ASSERT_FALSE(man.ok());
  EXPECT_NE(man.error().message.find("'frobnicate'"), std::string::npos);
}

TEST(Clidoc, BashCompletionOffersEveryOption) {
  Cli cli;
  std::string script = write_temp(bash_completion(describe_cli(cli.app)));
  EXPECT_EQ(run("bash -n " + script + " 2>&1").out, "");
  std::set<std::string> top = app_option_names(cli.app);
  for (const CLI::App* c : cli.commands()) {
    top.insert(c->get_name());
    EXPECT_EQ(bash_complete(script, {"natbpf", c->get_name(), "-"}), app_option_names(*c)) << c->get_name();
  }
  EXPECT_EQ(bash_complete(script, {"natbpf", ""}), top);
  EXPECT_EQ(bash_complete(script, {"natbpf", "trace", "--pr"}), std::set<std::string>{"--proto"});
  EXPECT_EQ(bash_complete(script, {"natbpf", "trace", "--proto", ""}), (std::set<std::string>{"tcp", "udp", "icmp"}));
  EXPECT_EQ(bash_complete(script, {"natbpf", "clash", "--json", "--proto", ""}), (std::set<std::string>{"tcp", "udp"}));
  EXPECT_EQ(bash_complete(script, {"natbpf", "explain", "--format", "n"}), std::set<std::string>{"nft"});
  EXPECT_EQ(bash_complete(script, {"natbpf", "trace", "--dport", ""}), std::set<std::string>{});
  // Files: --record's value and explain's recording.
  EXPECT_EQ(bash_complete(script, {"natbpf", "trace", "--record", script}), std::set<std::string>{script});
  EXPECT_EQ(bash_complete(script, {"natbpf", "explain", script}), std::set<std::string>{script});
  std::remove(script.c_str());
}

// zsh is not installed on the build machine (scripts/setup.sh does not add
// it): the specs are checked by text here, and with zsh -n where zsh exists.
TEST(Clidoc, ZshCompletionHasEveryOption) {
  Cli cli;
  std::string zsh = zsh_completion(describe_cli(cli.app));
  EXPECT_EQ(zsh.rfind("#compdef natbpf\n", 0), 0u);
  for (const auto& n : app_option_names(cli.app)) EXPECT_NE(zsh.find("'(- *)" + n + "["), std::string::npos) << n;
  for (const CLI::App* c : cli.commands()) {
    size_t at = zsh.find("\n\t\t" + c->get_name() + ")\n");
    ASSERT_NE(at, std::string::npos) << c->get_name();
    std::string block = zsh.substr(at, zsh.find(";;", at) - at);
    for (const auto& n : app_option_names(*c))
      EXPECT_TRUE(block.find("'" + n + "[") != std::string::npos || block.find("'*" + n + "[") != std::string::npos)
          << c->get_name() << " " << n;
  }
  EXPECT_NE(zsh.find("'--proto[tcp, udp or icmp]:tcp|udp|icmp:(tcp udp icmp)'"), std::string::npos);
  EXPECT_NE(zsh.find("'*--log["), std::string::npos);
  // bash reads the same quoting as zsh: every quote closes, no stray text.
  std::string path = write_temp(zsh);
  EXPECT_EQ(run("bash -n " + path + " 2>&1").out, "");
  if (run("command -v zsh").status == 0) {
    EXPECT_EQ(run("zsh -n " + path + " 2>&1").out, "");
  }
  std::remove(path.c_str());
}
