#pragma once

#include <iosfwd>
#include <string>
#include <vector>

namespace clayhook {

// Exit codes of the clayhook command (documented in README.md, "The clayhook command").
enum ExitCode : int { kExitOk = 0, kExitFailed = 1, kExitUsage = 2 };

// `clayhook ARGS...`: parses the command line and runs the command.
int run_cli(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

int check_command(const std::string& config_file, bool json, std::ostream& out, std::ostream& err);
int serve_command(const std::string& config_file, std::ostream& err);

}  // namespace clayhook
