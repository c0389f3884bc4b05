// describe_cli: the App's commands and options as plain data, which the man
// page and completion writers (clidoc_man.cpp, clidoc_completion.cpp) read.
#include "cli/clidoc.h"

namespace natbpf {
namespace {

std::vector<std::string> split_choices(const std::string& metavar) {
  std::vector<std::string> out;
  size_t start = 0;
  for (size_t bar; (bar = metavar.find('|', start)) != std::string::npos; start = bar + 1)
    out.push_back(metavar.substr(start, bar - start));
  out.push_back(metavar.substr(start));
  return out;
}

OptionDoc describe_option(const CLI::Option& opt) {
  OptionDoc d;
  d.positional = opt.get_positional();
  if (d.positional) d.names.push_back(opt.get_name(true));
  for (const auto& s : opt.get_snames()) d.names.push_back("-" + s);
  for (const auto& l : opt.get_lnames()) d.names.push_back("--" + l);
  d.description = opt.get_description();
  // A flag takes no value: CLI11's add_flag sets expected(0).
  if (opt.get_expected_max() == 0) return d;
  d.metavar = opt.get_type_name();
  d.repeatable = opt.get_items_expected_max() > 1;
  if (d.metavar == "FILE") d.kind = ValueKind::file;
  else if (d.metavar == "NETNS") d.kind = ValueKind::netns;
  else if (d.metavar == "IFNAME") d.kind = ValueKind::interface;
  else if (d.metavar.find('|') != std::string::npos) d.kind = ValueKind::choice;
  else d.kind = ValueKind::other;
  if (d.kind == ValueKind::choice) d.choices = split_choices(d.metavar);
  if (d.metavar.empty()) d.metavar = "VALUE";
  return d;
}

std::vector<OptionDoc> describe_options(const CLI::App& app) {
  std::vector<OptionDoc> out;
  for (const CLI::Option* opt : app.get_options()) out.push_back(describe_option(*opt));
  return out;
}

}  // namespace

CliDoc describe_cli(const CLI::App& app) {
  CliDoc doc;
  doc.name = app.get_name();
  doc.description = app.get_description();
  doc.version = NATBPF_VERSION;
  doc.options = describe_options(app);
  for (const CLI::App* sub : app.get_subcommands([](const CLI::App*) { return true; }))
    doc.commands.push_back(CommandDoc{sub->get_name(), sub->get_description(), describe_options(*sub)});
  return doc;
}

}  // namespace natbpf
