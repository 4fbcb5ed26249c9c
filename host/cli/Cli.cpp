// `clayhook COMMAND ...`: the dispatch to the commands, and their help. The
// help comes from one table (kCommands): each command's forms, with a
// one-line summary each, what it does, its options and its exit codes. The
// overview (`clayhook help`), a command's help (`clayhook help COMMAND`,
// `clayhook COMMAND --help`) and the usage lines of a usage error are all
// produced from it.
#include "cli/Args.h"
#include "cli/Commands.h"
#include "cli/DefaultConfig.h"

#include "plugins/AbiVersion.h"

#include <clayhook/json.hpp>

#include <algorithm>
#include <cctype>
#include <ostream>
#include <string_view>
#include <vector>

#ifndef CLAYHOOK_VERSION
#define CLAYHOOK_VERSION "0.0.0"
#endif

namespace clayhook {

namespace {

using namespace cli;

// One way to call a command and what it does, as the overview shows it.
struct Form {
    std::string_view synopsis;  // "events show ID [--config FILE] [--admin URL] [--json]"
    std::string_view summary;   // overview lines ("" for none); '\n' between lines
};

// Commands that share a heading in the overview, and the options and exit
// codes they share.
struct Group {
    std::string_view heading;              // "" for none
    std::vector<std::string_view> elided;  // left out of the overview's forms (the heading
                                           // explains them)
    std::string_view options;              // added to each command's options
    std::string_view exits;                // the exit codes, unless a command has its own
};

struct CommandDoc {
    std::string_view name;
    size_t group;
    std::vector<Form> forms;
    std::string_view about;    // what it does
    std::string_view options;  // "  --flag   meaning" lines
    std::string_view exits;    // "" for the group's
};

constexpr std::string_view kAdminExits =
    "exit codes: 0 ok, 1 the admin API answered an error (or the config does not load,\n"
    "has the admin API disabled or no usable admin.token), 2 usage, 4 the admin API\n"
    "refused the token (401), 7 no answer from the admin API (is the host running?)";

constexpr std::string_view kClayExits =
    "exit codes: 0 ok, 1 Clay answered another error, 2 usage (also an unusable\n"
    "--api-url or $CLAY_API_URL), 3 CLAY_API_KEY not set (nothing was sent), 4 Clay\n"
    "refused the key (401), 5 Clay refused the request (422; its details are printed),\n"
    "6 still rate limited (429) after one wait, 7 network failure (refused, DNS, TLS,\n"
    "timeout)";

const std::vector<Group>& groups() {
    static const std::vector<Group> g = {
        {"commands:", {}, "", "exit codes: 0 ok, 1 failed, 2 usage"},
        {"Clay API (the key from $CLAY_API_KEY; the URL from --api-url URL, else "
         "$CLAY_API_URL,\nelse https://api.clay.com):",
         {"[--api-url URL]"},
         "  --api-url URL       the Clay API (else $CLAY_API_URL, else https://api.clay.com);\n"
         "                      the key is $CLAY_API_KEY, never printed",
         kClayExits},
        {"Test deliveries (signed with the source's first secret, which is never printed):",
         {},
         "",
         "exit codes: 0 ok, 1 failed, 2 usage"},
        {"Running host (its admin API; address and token from the config's admin section,\n"
         "--admin URL overrides the address):",
         {"[--config FILE]", "[--admin URL]"},
         "  --config FILE   the config whose admin section gives the address and the token\n"
         "  --admin URL     the admin API's address instead (e.g. http://127.0.0.1:8081)",
         kAdminExits},
        {"Store:", {}, "", "exit codes: 0 ok, 1 failed, 2 usage"},
    };
    return g;
}

const std::vector<CommandDoc>& commands() {
    static const std::vector<CommandDoc> c = {
        {"serve",
         0,
         {{"serve [--config FILE]", "run the host"}},
         "Runs the host: loads the config and the plugins, opens the store, starts the\n"
         "dispatcher, the admin API and the intake listener, and logs (to stderr)\n"
         "msg=ready ... listen=ADDR:PORT admin=ADDR:PORT. SIGTERM or SIGINT: stop\n"
         "accepting, finish what is in flight, exit 0. SIGHUP: reload the config and the\n"
         "plugins (as 'clayhook reload').",
         "  --config FILE   the config to run",
         "exit codes: 0 stopped by SIGTERM or SIGINT, 1 could not start (the config, a\n"
         "secret, the store, a port), 2 usage"},
        {"check",
         0,
         {{"check [--config FILE] [--json]",
           "validate a config: sources, secrets, plugins, routes"}},
         "Validates a config as 'serve' would load it, loads and creates every plugin,\n"
         "and prints the store, the sources, the secrets (resolved or not, never their\n"
         "values), the plugins, the routes, the warnings and the errors. It never\n"
         "connects to the database.",
         "  --config FILE   the config to check\n"
         "  --json          the same as one JSON object",
         "exit codes: 0 usable, 1 errors found (or the file does not load), 2 usage"},
        {"plugin-doc",
         0,
         {{"plugin-doc LIBRARY", "a plugin's name, events and declared config (Markdown)"}},
         "Loads a plugin library (a path, or bundled:NAME) in this process and prints its\n"
         "name, version, ABI, event patterns and the config keys it declares, as the\n"
         "Markdown table the docs carry. Only for libraries you trust: their code runs.",
         "",
         "exit codes: 0 printed, 1 the library cannot be loaded, 2 usage"},
        {"version",
         0,
         {{"version [--json]", "print the host and plugin ABI versions"}},
         "Prints 'clayhook VERSION (plugin ABI MAJOR.MINOR)': the host's version and the\n"
         "plugin ABI it speaks. 'clayhook --version' and 'clayhook -V' are the same.",
         "  --json          {\"version\":\"VERSION\",\"abi\":\"MAJOR.MINOR\"}",
         "exit codes: 0 ok, 2 usage"},
        {"help",
         0,
         {{"help [COMMAND]", "this text, or one command's help"}},
         "Without COMMAND: every command, the default config and the exit codes. With\n"
         "COMMAND: its usage, what it does, its options and its exit codes, the same as\n"
         "'clayhook COMMAND --help' (or -h, anywhere among its arguments).",
         "",
         "exit codes: 0 ok, 2 an unknown COMMAND"},

        {"register",
         1,
         {{"register --url URL --table TABLE --events TYPE[,TYPE...] [--secret-file PATH] "
           "[--api-url URL]",
           "register a webhook; prints its id and the signing\n"
           "secret (shown once), or writes the secret to PATH (0600)"}},
         "Registers a webhook with Clay (POST {api}/v1/webhooks) and prints its id and\n"
         "the signing secret, which Clay shows only this once, with how to hand it to the\n"
         "host (CLAY_WEBHOOK_SECRET, or a file: entry under the source's verify.secrets).",
         "  --url URL           where Clay delivers: the host's listener and the source's path\n"
         "  --table TABLE       the Clay table\n"
         "  --events TYPE,...   the event types (comma-separated, or --events repeated)\n"
         "  --secret-file PATH  write the secret to PATH (a new file, mode 0600) instead of\n"
         "                      printing it; checked before anything is registered",
         ""},
        {"webhooks",
         1,
         {{"webhooks list [--json] [--api-url URL]", "list the registered webhooks"},
          {"webhooks delete ID [--api-url URL]", "delete one"}},
         "list: the webhooks registered with Clay (GET {api}/v1/webhooks): id, table,\n"
         "events, URL, created.\n"
         "delete: deletes one (DELETE {api}/v1/webhooks/ID); an unknown id (404) exits 1.",
         "  --json              (list) Clay's answer as JSON, without any secret",
         ""},

        {"sign",
         2,
         {{"sign [--config FILE] [--source NAME] [--timestamp UNIX] [--id ID] BODY_FILE|-",
           "print the headers the source's scheme would carry"}},
         "Prints the headers a delivery of BODY_FILE (- for stdin) would carry, signed\n"
         "the way the source's scheme expects with the source's first usable secret. The\n"
         "secret is never printed: for the token scheme, whose header is the secret\n"
         "itself, a placeholder is shown.",
         "  --config FILE      the config with the source\n"
         "  --source NAME      the source (may be left out when the config has one)\n"
         "  --timestamp UNIX   sign as of this Unix time (seconds): a reproducible output\n"
         "  --id ID            the delivery id to sign (default: a fresh msg_...)",
         "exit codes: 0 ok, 1 the config does not load, the source has no usable secret\n"
         "or BODY_FILE cannot be read, 2 usage"},
        {"send",
         2,
         {{"send [--config FILE] [--source NAME] [--url URL] (BODY_FILE|- | --sample TYPE|all)",
           "sign and POST to the host (default: the listener's\n"
           "address and the source's path); prints the answer.\n"
           "TYPE: enrichment.completed, enrichment.failed,\n"
           "table.row.created, table.row.updated,\n"
           "table.export.completed, workflow.completed"}},
         "Signs BODY_FILE (- for stdin) like 'sign' and POSTs it to the host; prints\n"
         "HTTP <status> and the answer. When the host refuses the signature (401), it\n"
         "says which secret it signed with (the source, the secret's number in\n"
         "verify.secrets and where its value came from, never the value), to compare\n"
         "with the host's.",
         "  --config FILE   the config with the source\n"
         "  --source NAME   the source (may be left out when the config has one)\n"
         "  --url URL       where to POST (default: the listener's address, 127.0.0.1 for\n"
         "                  0.0.0.0, and the source's path)\n"
         "  --sample TYPE   a generated example of TYPE (a fresh row id and timestamp)\n"
         "                  instead of BODY_FILE; 'all' sends one of each type",
         "exit codes: 0 every answer was 2xx, 1 another answer (or the config, the source\n"
         "or BODY_FILE failed), 2 usage (also no --url for a listener on port 0), 7 the\n"
         "host did not answer"},

        {"deliveries",
         3,
         {{"deliveries list [--config FILE] [--admin URL] [--state pending|done|dead] "
           "[--plugin NAME] [--limit N] [--before ID] [--json]",
           "list deliveries, newest first"}},
         "The running host's deliveries, newest first (GET /admin/deliveries): id, state,\n"
         "plugin, event id and type, attempts, last error. When the page is full, the\n"
         "last line says 'more: --before ID'; pass that for the next page.",
         "  --state STATE   pending, done or dead\n"
         "  --plugin NAME   one plugin's\n"
         "  --limit N       1-1000 (default 100)\n"
         "  --before ID     the page after this delivery id\n"
         "  --json          the admin API's answer as it is",
         ""},
        {"events",
         3,
         {{"events list [--config FILE] [--admin URL] [--type T] [--status pending|done|dead] "
           "[--since TIME] [--until TIME] [--limit N] [--before ID] [--json]",
           "list stored events, newest first, with delivery counts\n"
           "(TIME: unix ms or ISO 8601)"},
          {"events show ID [--config FILE] [--admin URL] [--json]",
           "one event: its body, its deliveries and their attempts"}},
         "list: the running host's stored events, newest first (GET /admin/events): id,\n"
         "received_at, type, source and the counts of its deliveries by state.\n"
         "show: one event (GET /admin/events/ID): its body (pretty JSON), each delivery\n"
         "and the attempts that did not succeed. Control characters are shown escaped.\n"
         "TIME: unix milliseconds or ISO 8601 (2026-11-27T04:22:00Z), 0 for no bound;\n"
         "ID: evt_ and 23 hex digits. Bad values are refused before anything is asked.",
         "  --type T        (list) one exact event type\n"
         "  --status STATE  (list) events with a delivery pending, done or dead\n"
         "  --since TIME    (list) received at or after TIME\n"
         "  --until TIME    (list) received before TIME\n"
         "  --limit N       (list) 1-1000 (default 100)\n"
         "  --before ID     (list) the page after this event id\n"
         "  --json          the admin API's answer as it is",
         ""},
        {"replay",
         3,
         {{"replay [--config FILE] [--admin URL] (ID... | --plugin NAME | --all-dead)",
           "hand dead deliveries over again"}},
         "Hands dead deliveries over again (POST /admin/replay): the delivery ids given,\n"
         "every dead delivery of one plugin, or every dead delivery (up to 100000 per run\n"
         "for the last two); exactly one of the three. Prints 'replayed N dead\n"
         "deliveries'. Replaying by ids exits 1 when any id was not replayed.",
         "  --plugin NAME   every dead delivery of this plugin\n"
         "  --all-dead      every dead delivery",
         ""},
        {"kill",
         3,
         {{"kill [--config FILE] [--admin URL] (ID... | [--plugin NAME] [--event ID]) "
           "[--reason TEXT]",
           "mark pending deliveries dead (a poison delivery)"}},
         "Marks pending deliveries dead (POST /admin/kill), the way out of a poison\n"
         "delivery: the delivery ids given, or every pending delivery of a plugin, of an\n"
         "event, or of both. A call already running finishes and its result is dropped.\n"
         "'clayhook replay' brings them back once the plugin is fixed. Marking by ids\n"
         "exits 1 when fewer were marked than given.",
         "  --plugin NAME   the pending deliveries of this plugin\n"
         "  --event ID      the pending deliveries of this event\n"
         "  --reason TEXT   appended to their last_error",
         ""},
        {"plugins",
         3,
         {{"plugins [list] [--config FILE] [--admin URL] [--json]",
           "plugin status and counts (list is the default)"},
          {"plugins pause NAME [--config FILE] [--admin URL]", "pause one (kept across restarts)"},
          {"plugins resume NAME [--config FILE] [--admin URL]", "resume one"}},
         "list: each plugin (GET /admin/plugins): kind and version, paused, loaded,\n"
         "pending, in flight, done, dead and the queue lag, then a DOWN: line for each\n"
         "plugin refused at start and a 'not loaded:' line for each name with deliveries\n"
         "and no lane.\n"
         "pause, resume: stop or restart handing one plugin its deliveries; prints\n"
         "'NAME paused' or 'NAME resumed'.",
         "  --json          (list) the admin API's answer as it is",
         ""},
        {"reload",
         3,
         {{"reload [--config FILE] [--admin URL] [--json]",
           "reload the config and the plugins now (like SIGHUP);\n"
           "exit 1 when refused (the running generation stays)"}},
         "Asks the running host to reload its config file and its plugins now, as SIGHUP\n"
         "does (POST /admin/reload), and waits for the result (up to 5 minutes). Prints\n"
         "'reloaded FILE: generation N serving (took T ms)', FILE being the file the host\n"
         "read, then a 'warning: ...' line for each setting that takes a restart. When\n"
         "FILE is not the config given here (--config, else the default), a warning on\n"
         "stderr says so: the host reloads its own file.",
         "  --json          the admin API's answer as it is (to stdout when it succeeded,\n"
         "                  to stderr when it was refused)",
         "exit codes: 0 reloaded, 1 refused (the running generation keeps serving) or\n"
         "another error, 2 usage, 4 the admin API refused the token (401), 7 no answer\n"
         "from the admin API (is the host running?)"},

        {"backup",
         4,
         {{"backup [--config FILE] OUT",
           "a consistent copy of the SQLite store in OUT (a new\n"
           "file, mode 0600), also while the host runs"}},
         "Makes a consistent copy of the SQLite store (store.path) in OUT, also while the\n"
         "host runs: one read transaction (VACUUM INTO), checked with PRAGMA\n"
         "integrity_check. OUT must not exist. Restore by stopping the host and putting\n"
         "OUT in place of the store's file (see docs/operations.md, \"Backups\").",
         "  --config FILE   the config whose store is copied",
         "exit codes: 0 copied and checked, 1 failed (also a PostgreSQL store: use\n"
         "pg_dump), 2 usage"},
    };
    return c;
}

const CommandDoc* find_command(std::string_view name) {
    for (const auto& c : commands())
        if (c.name == name) return &c;
    return nullptr;
}

constexpr size_t kWidth = 88;          // where forms are wrapped
constexpr size_t kSummaryColumn = 34;  // where the overview's summaries start

// The words of a synopsis, a bracketed or parenthesized group being one word.
std::vector<std::string_view> words(std::string_view s) {
    std::vector<std::string_view> out;
    int depth = 0;
    size_t start = 0;
    for (size_t i = 0; i <= s.size(); ++i) {
        if (i == s.size() || (s[i] == ' ' && depth == 0)) {
            if (i > start) out.push_back(s.substr(start, i - start));
            start = i + 1;
            continue;
        }
        if (s[i] == '[' || s[i] == '(') ++depth;
        if (s[i] == ']' || s[i] == ')') --depth;
    }
    return out;
}

bool plain_word(std::string_view w) {
    return !w.empty() && std::all_of(w.begin(), w.end(), [](char ch) {
        return std::islower(static_cast<unsigned char>(ch)) != 0;
    });
}

// The subcommands a command's forms name ("list" of "webhooks list",
// "list" of "plugins [list]").
std::vector<std::string> subcommands(const CommandDoc& c) {
    std::vector<std::string> out;
    for (const auto& f : c.forms) {
        auto w = words(f.synopsis);
        if (w.size() < 2) continue;
        std::string_view s = w[1];
        if (s.size() > 2 && s.front() == '[' && s.back() == ']') s = s.substr(1, s.size() - 2);
        if (plain_word(s)) out.emplace_back(s);
    }
    return out;
}

// `prefix` and the synopsis' words, wrapped at kWidth; continuation lines
// start under the first word after the command's name and subcommand.
std::string wrap_form(std::string_view prefix, std::string_view synopsis,
                      const std::vector<std::string_view>& elided = {}) {
    std::vector<std::string_view> w;
    for (auto x : words(synopsis))
        if (std::find(elided.begin(), elided.end(), x) == elided.end()) w.push_back(x);
    std::string out(prefix);
    if (w.empty()) return out + "\n";
    size_t lead = prefix.size() + w[0].size() + 1;
    if (w.size() > 2 && plain_word(w[1])) lead += w[1].size() + 1;
    const std::string indent(lead, ' ');
    size_t line_start = 0;
    out += w[0];
    for (size_t i = 1; i < w.size(); ++i) {
        if (out.size() - line_start + 1 + w[i].size() > kWidth) {
            out += "\n";
            line_start = out.size();
            out += indent;
        } else {
            out += " ";
        }
        out += w[i];
    }
    return out + "\n";
}

std::string usage_lines(const CommandDoc& c) {
    std::string out;
    for (size_t i = 0; i < c.forms.size(); ++i)
        out += wrap_form(i == 0 ? "usage: clayhook " : "       clayhook ", c.forms[i].synopsis);
    return out;
}

std::string default_config_note() {
    return "FILE defaults to $CLAYHOOK_CONFIG, else " + std::string(kCheckoutConfig) +
           " when it exists\nhere (a source checkout), else " + installed_config_file() +
           " (installed).\n";
}

bool takes_config(const CommandDoc& c) {
    for (const auto& f : c.forms)
        if (f.synopsis.find("--config FILE") != std::string_view::npos) return true;
    return false;
}

std::string version_text(bool json) {
    if (json)
        return json::dump(json::Value::object()
                              .set("version", CLAYHOOK_VERSION)
                              .set("abi", host_abi().str())) +
               "\n";
    return std::string("clayhook ") + CLAYHOOK_VERSION + " (plugin ABI " + host_abi().str() + ")\n";
}

// `version [--json]`, `--version`, `-V`.
int version_command(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
    Args a;
    if (auto problem = parse_args(args, 1, {}, {"--json"}, a); !problem.empty())
        return usage_error(err, "version", problem, command_usage("version"));
    if (!a.positional.empty())
        return usage_error(err, "version", "unexpected argument '" + a.positional[0] + "'",
                           command_usage("version"));
    out << version_text(a.has("--json"));
    return kExitOk;
}

// `help [COMMAND [SUBCOMMAND]]`.
int help_command(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
    if (args.size() < 2) {
        out << overview_help();
        return kExitOk;
    }
    std::string name = args[1];
    if (name == "--help" || name == "-h") name = "help";
    const CommandDoc* c = find_command(name);
    if (c == nullptr) {
        err << "clayhook help: no command '" << name << "'; 'clayhook help' lists them\n";
        return kExitUsage;
    }
    if (args.size() > 3) {
        err << "clayhook help: give one command (and at most one of its subcommands)\n";
        return kExitUsage;
    }
    if (args.size() == 3) {
        auto subs = subcommands(*c);
        if (std::find(subs.begin(), subs.end(), args[2]) == subs.end()) {
            err << "clayhook help: " << name << " has no subcommand '" << args[2] << "'";
            if (!subs.empty()) {
                err << " (";
                for (size_t i = 0; i < subs.size(); ++i)
                    err << (i ? ", " : "") << subs[i];
                err << ")";
            }
            err << "\n";
            return kExitUsage;
        }
    }
    out << command_help(name);
    return kExitOk;
}

// --help or -h among a command's arguments (before a `--`).
bool asks_for_help(const std::vector<std::string>& args) {
    for (size_t i = 1; i < args.size(); ++i) {
        if (args[i] == "--") return false;
        if (args[i] == "--help" || args[i] == "-h") return true;
    }
    return false;
}

}  // namespace

std::string overview_help() {
    std::string out =
        "usage: clayhook <command> [options]\n"
        "       clayhook help COMMAND, or clayhook COMMAND --help: one command\n";
    for (size_t g = 0; g < groups().size(); ++g) {
        const Group& group = groups()[g];
        out += "\n";
        if (!group.heading.empty()) out += std::string(group.heading) + "\n";
        for (const auto& c : commands()) {
            if (c.group != g) continue;
            for (const auto& f : c.forms) {
                std::string lines = wrap_form("  ", f.synopsis, group.elided);
                if (f.summary.empty()) {
                    out += lines;
                    continue;
                }
                lines.pop_back();  // the last "\n"
                size_t last = lines.rfind('\n');
                size_t last_len = lines.size() - (last == std::string::npos ? 0 : last + 1);
                if (last == std::string::npos && last_len + 1 < kSummaryColumn) {
                    out += lines + std::string(kSummaryColumn - last_len, ' ');
                } else {
                    out += lines + "\n" + std::string(kSummaryColumn, ' ');
                }
                std::string_view s = f.summary;
                for (size_t nl; (nl = s.find('\n')) != std::string_view::npos;) {
                    out += std::string(s.substr(0, nl)) + "\n" + std::string(kSummaryColumn, ' ');
                    s.remove_prefix(nl + 1);
                }
                out += std::string(s) + "\n";
            }
        }
    }
    out += "\n" + default_config_note() +
           "--source may be left out when the config has one source.\n"
           "exit codes: 0 ok, 1 failed (check found errors, serve could not start, send got a\n"
           "non-2xx answer, Clay or the admin API answered another error), 2 usage,\n"
           "3 CLAY_API_KEY not set, 4 Clay or the admin API refused the key or token (401),\n"
           "5 Clay refused the request (422), 6 still rate limited (429) after one wait,\n"
           "7 network failure (refused, DNS, TLS, timeout).\n";
    return out;
}

std::string command_usage(std::string_view name) {
    const CommandDoc* c = find_command(name);
    return c == nullptr ? std::string() : usage_lines(*c);
}

std::string command_help(std::string_view name) {
    const CommandDoc* c = find_command(name);
    if (c == nullptr) return "";
    const Group& g = groups()[c->group];
    std::string out = usage_lines(*c);
    out += "\n" + std::string(c->about) + "\n";
    std::string options(c->options);
    if (!g.options.empty()) options += (options.empty() ? "" : "\n") + std::string(g.options);
    if (!options.empty()) out += "\noptions:\n" + options + "\n";
    if (c->name != "help") {
        // In the column of the other options' meanings.
        size_t column = 18;
        if (size_t gap = options.find("  ", 2);
            gap != std::string::npos && gap < options.find('\n'))
            column = std::max(options.find_first_not_of(' ', gap), size_t{14});
        std::string flag = "  --help, -h";
        out += (options.empty() ? "\noptions:\n" : "") + flag +
               std::string(column > flag.size() ? column - flag.size() : 1, ' ') + "this help\n";
    }
    out += "\n";
    if (takes_config(*c)) out += default_config_note();
    out += std::string(c->exits.empty() ? g.exits : c->exits) + "\n";
    return out;
}

int run_cli(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
    if (args.empty()) {
        err << overview_help();
        return kExitUsage;
    }
    const std::string& cmd = args[0];
    if (cmd == "--help" || cmd == "-h") return help_command({"help"}, out, err);
    if (cmd == "--version" || cmd == "-V") return version_command(args, out, err);
    if (find_command(cmd) == nullptr) {
        err << "clayhook: unknown command '" << cmd << "'; 'clayhook help' lists the commands\n";
        return kExitUsage;
    }
    if (cmd == "help") return help_command(args, out, err);
    if (asks_for_help(args)) {
        out << command_help(cmd);
        return kExitOk;
    }
    if (cmd == "version") return version_command(args, out, err);
    if (cmd == "register" || cmd == "webhooks" || cmd == "sign" || cmd == "send")
        return clay_command(args, out, err);
    if (cmd == "deliveries" || cmd == "replay" || cmd == "plugins" || cmd == "reload" ||
        cmd == "kill")
        return admin_command(args, out, err);
    if (cmd == "events") return events_command(args, out, err);
    if (cmd == "backup") return backup_command(args, out, err);
    if (cmd == "plugin-doc") return plugin_doc_command(args, out, err);
    // serve, check
    Args a;
    const std::string problem = cmd == "check" ? parse_args(args, 1, {"--config"}, {"--json"}, a)
                                               : parse_args(args, 1, {"--config"}, {}, a);
    if (!problem.empty()) return usage_error(err, cmd, problem, command_usage(cmd));
    if (!a.positional.empty())
        return usage_error(err, cmd, "unexpected argument '" + a.positional[0] + "'",
                           command_usage(cmd));
    const std::string config = a.get("--config").value_or(default_config_file());
    return cmd == "check" ? check_command(config, a.has("--json"), out, err)
                          : serve_command(config, err);
}

}  // namespace clayhook
