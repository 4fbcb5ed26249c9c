#pragma once

#include <iosfwd>
#include <string>
#include <string_view>
#include <vector>

namespace clayhook {

// Exit codes of the clayhook command (documented in README.md, "The clayhook command",
// and in `clayhook help`). 3-7 come from the commands that call the Clay API
// (register, webhooks) and from send (7), so scripts can tell a wrong key from
// a network outage without parsing messages.
enum ExitCode : int {
    kExitOk = 0,
    kExitFailed = 1,
    kExitUsage = 2,
    kExitNoApiKey = 3,      // CLAY_API_KEY unset or empty: nothing was sent
    kExitUnauthorized = 4,  // Clay answered 401: the key was refused
    kExitInvalid = 5,       // Clay answered 422: its details are printed
    kExitRateLimited = 6,   // Clay answered 429 again after one wait and retry
    kExitNetwork = 7,       // no answer: refused, DNS, TLS, timeout (the URL is named)
};

// `clayhook ARGS...`: parses the command line and runs the command.
int run_cli(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

// The help, from the table of commands in Cli.cpp:
// `clayhook help`: every command, the default config and the exit codes.
std::string overview_help();
// `clayhook help NAME` / `clayhook NAME --help`: its usage, what it does, its
// options and exit codes; "" for an unknown name.
std::string command_help(std::string_view name);
// Its usage lines only ("usage: clayhook NAME ...\n", a line per form), for
// a usage error; "" for an unknown name.
std::string command_usage(std::string_view name);

int check_command(const std::string& config_file, bool json, std::ostream& out, std::ostream& err);
int serve_command(const std::string& config_file, std::ostream& err);
// `register`, `webhooks list|delete`, `sign`, `send`: args[0] is the command.
int clay_command(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);
// `deliveries list`, `replay`, `plugins`: admin API clients; args[0] is the command.
int admin_command(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);
// `events list|show`: admin API clients; args[0] is "events".
int events_command(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);
// `backup OUT`: a consistent copy of the SQLite store.
int backup_command(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);
// `plugin-doc LIBRARY`: a plugin's name, events and declared config (Markdown).
int plugin_doc_command(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

}  // namespace clayhook
