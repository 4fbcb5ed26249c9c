#include "cli/Commands.h"

#include "plugins/AbiVersion.h"

#include <cstdlib>
#include <ostream>

#ifndef CLAYHOOK_VERSION
#define CLAYHOOK_VERSION "0.0.0"
#endif

namespace clayhook {

namespace {

constexpr const char* kUsage = R"(usage: clayhook <command> [options]

commands:
  serve  [--config FILE]          run the host
  check  [--config FILE] [--json] validate a config: sources, secrets, plugins, routes
  version                         print the host and plugin ABI versions
  help                            this text

Clay API (the key from $CLAY_API_KEY; the URL from --api-url URL, else $CLAY_API_URL,
else https://api.clay.com):
  register --url URL --table TABLE --events TYPE[,TYPE...] [--secret-file PATH]
                                  register a webhook; prints its id and the signing
                                  secret (shown once), or writes the secret to PATH (0600)
  webhooks list [--json]          list the registered webhooks
  webhooks delete ID              delete one

Test deliveries (signed with the source's first secret, which is never printed):
  sign [--config FILE] [--source NAME] BODY_FILE|-
                                  print the headers the source's scheme would carry
  send [--config FILE] [--source NAME] [--url URL] (BODY_FILE|- | --sample TYPE|all)
                                  sign and POST to the host (default: the listener's
                                  address and the source's path); prints the answer.
                                  TYPE: enrichment.completed, enrichment.failed,
                                  table.row.created, table.row.updated,
                                  table.export.completed, workflow.completed

Running host (its admin API; address and token from the config's admin section,
--admin URL overrides the address):
  deliveries list [--state pending|done|dead] [--plugin NAME] [--limit N] [--before ID] [--json]
                                  list deliveries, newest first
  events list [--type T] [--status pending|done|dead] [--since TIME] [--until TIME]
              [--limit N] [--before ID] [--json]
                                  list stored events, newest first, with delivery counts
                                  (TIME: unix ms or ISO 8601)
  events show ID [--json]         one event: its body, its deliveries and their attempts
  replay (ID... | --plugin NAME | --all-dead)
                                  hand dead deliveries over again
  kill (ID... | [--plugin NAME] [--event ID]) [--reason TEXT]
                                  mark pending deliveries dead (a poison delivery)
  plugins [list | pause NAME | resume NAME] [--json]
                                  plugin status and counts; pause or resume one
  reload [--json]                 reload the config and the plugins now (like SIGHUP);
                                  exit 1 when refused (the running generation stays)

Store:
  backup [--config FILE] OUT      a consistent copy of the SQLite store in OUT (a new
                                  file, mode 0600), also while the host runs

FILE defaults to $CLAYHOOK_CONFIG, else config/clayhook.yaml; --source may be left
out when the config has one source.
exit codes: 0 ok, 1 failed (check found errors, serve could not start, send got a
non-2xx answer, Clay or the admin API answered another error), 2 usage,
3 CLAY_API_KEY not set, 4 Clay or the admin API refused the key or token (401),
5 Clay refused the request (422), 6 still rate limited (429) after one wait,
7 network failure (refused, DNS, TLS, timeout).
)";

std::string default_config() {
    const char* env = std::getenv("CLAYHOOK_CONFIG");
    return env && *env ? env : "config/clayhook.yaml";
}

}  // namespace

int run_cli(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
    if (args.empty() || args[0] == "help" || args[0] == "--help" || args[0] == "-h") {
        (args.empty() ? err : out) << kUsage;
        return args.empty() ? kExitUsage : kExitOk;
    }
    const std::string& cmd = args[0];
    if (cmd == "version" || cmd == "--version") {
        out << "clayhook " << CLAYHOOK_VERSION << " (plugin ABI " << host_abi().str() << ")\n";
        return kExitOk;
    }
    if (cmd == "register" || cmd == "webhooks" || cmd == "sign" || cmd == "send")
        return clay_command(args, out, err);
    if (cmd == "deliveries" || cmd == "replay" || cmd == "plugins" || cmd == "reload" ||
        cmd == "kill")
        return admin_command(args, out, err);
    if (cmd == "events") return events_command(args, out, err);
    if (cmd == "backup") return backup_command(args, out, err);
    if (cmd != "serve" && cmd != "check") {
        err << "clayhook: unknown command '" << cmd << "'\n\n" << kUsage;
        return kExitUsage;
    }
    std::string config = default_config();
    bool json = false;
    for (size_t i = 1; i < args.size(); ++i) {
        const std::string& a = args[i];
        if ((a == "--config" || a == "-c") && i + 1 < args.size()) {
            config = args[++i];
        } else if (a.rfind("--config=", 0) == 0) {
            config = a.substr(9);
        } else if (a == "--json" && cmd == "check") {
            json = true;
        } else {
            err << "clayhook " << cmd << ": unexpected argument '" << a << "'\n\n" << kUsage;
            return kExitUsage;
        }
    }
    return cmd == "check" ? check_command(config, json, out, err) : serve_command(config, err);
}

}  // namespace clayhook
