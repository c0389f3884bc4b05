// The man page and the bash and zsh completions, written from the CLI11 App
// that build_cli() defines: every command and option they list comes from
// it. Only prose the App does not hold (a paragraph per command, exit
// status, environment, files) is written here, in clidoc_man.cpp.
#pragma once

#include <CLI/CLI.hpp>

#include <string>
#include <vector>

#include "util/result.h"

namespace natbpf {

// What an option's value is (its type_name, see cli/cli.h).
enum class ValueKind { none, file, netns, interface, choice, other };

struct OptionDoc {
  std::vector<std::string> names;  // "-h", "--help"; a positional's is its name, "file"
  std::string metavar;             // "FILE", "tcp|udp|icmp"; empty for a flag
  std::string description;
  ValueKind kind = ValueKind::none;
  std::vector<std::string> choices;  // kind == choice
  bool positional = false;
  bool repeatable = false;  // given more than once, or taking several values
};

struct CommandDoc {
  std::string name, summary;
  std::vector<OptionDoc> options;
};

struct CliDoc {
  std::string name, description, version;
  std::vector<OptionDoc> options;  // before the command: --help, --version
  std::vector<CommandDoc> commands;
};

// The App's commands and options, in the order they were defined.
CliDoc describe_cli(const CLI::App& app);

// natbpf.1 in man(7) roff. An error when a command has no prose paragraph
// in clidoc_man.cpp: a new command must be documented, not left out.
Result<std::string> man_page(const CliDoc& doc);
// For /usr/share/bash-completion/completions/natbpf: defines _natbpf.
std::string bash_completion(const CliDoc& doc);
// For /usr/share/zsh/site-functions/_natbpf (#compdef natbpf).
std::string zsh_completion(const CliDoc& doc);

}  // namespace natbpf
