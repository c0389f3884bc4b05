// natbpf-clidoc OUTDIR: writes natbpf.1, natbpf.bash and _natbpf (zsh) from
// the command line main() parses (cli/cli.h), at build time. Not installed;
// what it writes is.
#include <CLI/CLI.hpp>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <iostream>

#include "cli/cli.h"
#include "cli/clidoc.h"

namespace {

natbpf::Status write_file(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  out.close();
  if (!out) return natbpf::Error{"cannot write " + path + ": " + std::strerror(errno), "is the directory writable?"};
  return natbpf::Ok{};
}

natbpf::Status generate(const std::string& dir) {
  CLI::App app;
  natbpf::CommandContext ctx;
  natbpf::build_cli(app, ctx);
  natbpf::CliDoc doc = natbpf::describe_cli(app);
  auto man = natbpf::man_page(doc);
  if (!man) return man.error();
  for (const auto& [name, text] : {std::pair{doc.name + ".1", *man}, std::pair{doc.name + ".bash", natbpf::bash_completion(doc)},
                                   std::pair{"_" + doc.name, natbpf::zsh_completion(doc)}})
    if (auto st = write_file(dir + "/" + name, text); !st) return st;
  return natbpf::Ok{};
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: natbpf-clidoc OUTDIR (writes natbpf.1, natbpf.bash and _natbpf there)\n";
    return 2;
  }
  if (auto st = generate(argv[1]); !st) {
    std::cerr << "natbpf-clidoc: " << st.error().to_string() << "\n";
    return st.error().exit_code;
  }
  return 0;
}
