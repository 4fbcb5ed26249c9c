// The commands that talk to Clay or act as Clay:
//   register, webhooks list|delete: the Clay API (clay/ClayApi.h);
//   sign, send: a delivery signed the way a configured source expects it,
//   printed (sign) or posted to the host (send).
// Secrets: register prints the webhook secret Clay shows once, unless
// --secret-file takes it; nothing here prints a source's secret or the API key.
#include "cli/Args.h"
#include "cli/Commands.h"
#include "cli/DefaultConfig.h"
#include "text/Text.h"

#include "clay/ClayApi.h"
#include "config/ConfigError.h"
#include "config/ConfigLoader.h"
#include "routing/EventCatalogue.h"
#include "verify/Verifier.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <clayhook/json.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <sstream>
#include <string_view>

namespace clayhook {

namespace {

using namespace cli;

using Clock = std::chrono::system_clock;

constexpr std::chrono::milliseconds kSendTimeout{10'000};

// ---------------------------------------------------------------------------
// Command-line options

std::vector<std::string> split_list(const std::vector<std::string>& values) {
    std::vector<std::string> out;
    for (const auto& v : values) {
        size_t i = 0;
        while (i <= v.size()) {
            size_t j = v.find(',', i);
            if (j == std::string::npos) j = v.size();
            std::string item = v.substr(i, j - i);
            item.erase(0, item.find_first_not_of(" \t"));
            item.erase(item.find_last_not_of(" \t") + 1);
            if (!item.empty()) out.push_back(item);
            i = j + 1;
        }
    }
    return out;
}

std::string join(const std::vector<std::string>& items, std::string_view sep) {
    std::string out;
    for (const auto& s : items) {
        if (!out.empty()) out += sep;
        out += s;
    }
    return out;
}

// ---------------------------------------------------------------------------
// Clay API errors → messages and exit codes

int report_api_error(const ClayApiError& e, std::string_view cmd, std::ostream& err) {
    err << "clayhook " << cmd << ": " << e.what();
    if (!e.details.empty()) {
        // 422 above all: each of Clay's reasons on its own line.
        err << ":\n";
        for (const auto& d : e.details)
            err << "  - " << d << "\n";
    } else {
        err << "\n";
        // An answer Clay's contract does not describe: show its start.
        bool unexplained = e.kind == ClayErrorKind::http || e.kind == ClayErrorKind::bad_response;
        if (unexplained && e.error.empty() && !e.body.empty())
            err << "  " << e.body.substr(0, 300) << (e.body.size() > 300 ? "..." : "") << "\n";
    }
    switch (e.kind) {
        case ClayErrorKind::missing_key:
            return kExitNoApiKey;
        case ClayErrorKind::bad_url:
            return kExitUsage;
        case ClayErrorKind::unauthorized:
            return kExitUnauthorized;
        case ClayErrorKind::validation:
            return kExitInvalid;
        case ClayErrorKind::rate_limited:
            return kExitRateLimited;
        case ClayErrorKind::network:
            return kExitNetwork;
        case ClayErrorKind::not_found:
        case ClayErrorKind::http:
        case ClayErrorKind::bad_response:
            return kExitFailed;
    }
    return kExitFailed;
}

ClayApiOptions api_options(const Args& a, std::ostream& err) {
    ClayApiOptions o = ClayApiOptions::from_env(a.get("--api-url").value_or(""));
    o.on_rate_limit_wait = [&err](std::chrono::seconds wait, const std::string& url) {
        err << "Clay is rate limiting (429) " << url << "; waiting " << wait.count()
            << " s as its Retry-After asks, then retrying once\n";
        err.flush();
    };
    return o;
}

// ---------------------------------------------------------------------------
// register

// The secret file is prepared before Clay is asked: Clay shows the secret
// only once, so a path we cannot write must fail before the webhook exists.
// The secret goes to a fresh mkstemp file (mode 0600 from the start, whatever
// the umask) renamed over PATH, so it is never readable by others, not even
// for a moment, and an existing file or symlink at PATH is replaced, not
// written through.
class PendingSecretFile {
  public:
    explicit PendingSecretFile(std::string path) : path_(std::move(path)) {
        std::filesystem::path p(path_);
        if (std::filesystem::is_directory(p)) throw std::runtime_error(path_ + " is a directory");
        std::filesystem::path dir = p.parent_path();
        if (dir.empty()) dir = ".";
        dir_ = dir.string();
        tmp_ = (dir / ("." + p.filename().string() + ".XXXXXX")).string();
        fd_ = ::mkstemp(tmp_.data());
        if (fd_ < 0)
            throw std::runtime_error("cannot create a file in " + dir_ + ": " + errno_text());
        ::fchmod(fd_, S_IRUSR | S_IWUSR);
    }
    ~PendingSecretFile() {
        if (fd_ >= 0) ::close(fd_);
        if (!committed_) ::unlink(tmp_.c_str());
    }
    PendingSecretFile(const PendingSecretFile&) = delete;
    PendingSecretFile& operator=(const PendingSecretFile&) = delete;

    void commit(std::string_view secret) {
        std::string text(secret);
        text += '\n';
        size_t done = 0;
        while (done < text.size()) {
            ssize_t n = ::write(fd_, text.data() + done, text.size() - done);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) fail("cannot write");
            done += static_cast<size_t>(n);
        }
        OPENSSL_cleanse(text.data(), text.size());
        if (::fsync(fd_) != 0) fail("cannot sync");
        ::close(fd_);
        fd_ = -1;
        if (::rename(tmp_.c_str(), path_.c_str()) != 0) fail("cannot rename into place");
        committed_ = true;
        // The rename itself must survive a crash too.
        int dfd = ::open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd >= 0) {
            ::fsync(dfd);
            ::close(dfd);
        }
    }

  private:
    static std::string errno_text() { return std::strerror(errno); }
    [[noreturn]] void fail(const char* what) {
        throw std::runtime_error(std::string(what) + " " + path_ + ": " + errno_text());
    }

    std::string path_, dir_, tmp_;
    int fd_ = -1;
    bool committed_ = false;
};

int register_command(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
    Args a;
    if (auto problem = parse_args(
            args, 1, {"--url", "--table", "--events", "--secret-file", "--api-url"}, {}, a);
        !problem.empty())
        return usage_error(err, "register", problem, command_usage("register"));
    if (!a.positional.empty())
        return usage_error(err, "register", "unexpected argument '" + a.positional[0] + "'",
                           command_usage("register"));
    auto url = a.get("--url");
    auto table = a.get("--table");
    std::vector<std::string> events;
    if (auto it = a.values.find("--events"); it != a.values.end()) events = split_list(it->second);
    if (!url) return usage_error(err, "register", "--url is required", command_usage("register"));
    if (!table)
        return usage_error(err, "register", "--table is required", command_usage("register"));
    if (events.empty())
        return usage_error(err, "register", "--events needs at least one event type",
                           command_usage("register"));
    auto secret_file = a.get("--secret-file");
    if (secret_file && secret_file->empty())
        return usage_error(err, "register", "--secret-file needs a path",
                           command_usage("register"));

    try {
        ClayApi api(api_options(a, err));
        std::unique_ptr<PendingSecretFile> pending;
        if (secret_file) {
            try {
                pending = std::make_unique<PendingSecretFile>(*secret_file);
            } catch (const std::exception& e) {
                err << "clayhook register: --secret-file: " << e.what()
                    << "; nothing was registered\n";
                return kExitFailed;
            }
        }
        ClayWebhook w = api.create_webhook(*url, *table, events);

        out << "registered webhook " << w.id << "\n"
            << "  url:     " << (w.url.empty() ? *url : w.url) << "\n"
            << "  table:   " << (w.table_id.empty() ? *table : w.table_id) << "\n"
            << "  events:  " << join(w.events.empty() ? events : w.events, ", ") << "\n";
        if (!w.created_at.empty()) out << "  created: " << w.created_at << "\n";

        if (w.secret.empty()) {
            out << "Clay returned no signing secret for this webhook.\n";
            return kExitOk;
        }
        if (pending) {
            try {
                pending->commit(w.secret);
            } catch (const std::exception& e) {
                // The secret is lost with this failure: say how to recover
                // rather than print it.
                err << "clayhook register: --secret-file: " << e.what() << "\n"
                    << "The secret cannot be shown again: delete the webhook with 'clayhook "
                       "webhooks delete "
                    << w.id << "' and register again.\n";
                OPENSSL_cleanse(w.secret.data(), w.secret.size());
                return kExitFailed;
            }
            OPENSSL_cleanse(w.secret.data(), w.secret.size());
            std::string abs = std::filesystem::absolute(*secret_file).lexically_normal().string();
            out << "signing secret written to " << abs << " (mode 0600; not shown)\n"
                << "Hand it to the host: list 'file:" << abs << "' under the source's\n"
                << "verify.secrets (the default config reads file:var/clay-webhook-secret when\n"
                << "CLAY_WEBHOOK_SECRET is unset); then run 'clayhook check' and restart\n"
                << "'clayhook serve'.\n";
            return kExitOk;
        }
        out << "signing secret (Clay shows it only this once; store it now):\n"
            << "  " << w.secret << "\n"
            << "Hand it to the host: put it in the host's environment as CLAY_WEBHOOK_SECRET,\n"
            << "or in a file only the host can read (mode 0600) listed under the source's\n"
            << "verify.secrets as 'file:PATH'; then run 'clayhook check' and restart\n"
            << "'clayhook serve'. Next time, --secret-file PATH writes it there unprinted.\n";
        OPENSSL_cleanse(w.secret.data(), w.secret.size());
        return kExitOk;
    } catch (const ClayApiError& e) {
        return report_api_error(e, "register", err);
    }
}

// ---------------------------------------------------------------------------
// webhooks list | delete

// The list as JSON, minus any `secret` member: Clay should not send one in
// a listing, and if it ever did, --json output is no place for it.
json::Value without_secrets(const json::Value& v) {
    if (v.is_object()) {
        json::Value o = json::Value::object();
        for (const auto& [k, m] : v.members())
            if (k != "secret") o.set(k, without_secrets(m));
        return o;
    }
    if (v.is_array()) {
        json::Value a = json::Value::array();
        for (const auto& item : v.items())
            a.push_back(without_secrets(item));
        return a;
    }
    return v;
}

int webhooks_command(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
    Args a;
    if (auto problem = parse_args(args, 1, {"--api-url"}, {"--json"}, a); !problem.empty())
        return usage_error(err, "webhooks", problem, command_usage("webhooks"));
    if (a.positional.empty())
        return usage_error(err, "webhooks", "say 'list' or 'delete ID'", command_usage("webhooks"));
    const std::string& sub = a.positional[0];
    if (sub == "list") {
        if (a.positional.size() > 1)
            return usage_error(err, "webhooks list",
                               "unexpected argument '" + a.positional[1] + "'",
                               command_usage("webhooks"));
    } else if (sub == "delete") {
        if (a.positional.size() != 2 || a.positional[1].empty())
            return usage_error(err, "webhooks delete", "needs exactly one webhook ID",
                               command_usage("webhooks"));
        if (a.has("--json"))
            return usage_error(err, "webhooks delete", "--json is for 'list'",
                               command_usage("webhooks"));
    } else {
        return usage_error(err, "webhooks", "unknown subcommand '" + sub + "'",
                           command_usage("webhooks"));
    }

    const std::string cmd = "webhooks " + sub;
    try {
        ClayApi api(api_options(a, err));
        if (sub == "delete") {
            const std::string& id = a.positional[1];
            try {
                api.delete_webhook(id);
            } catch (const ClayApiError& e) {
                if (e.kind != ClayErrorKind::not_found) throw;
                err << "clayhook " << cmd << ": Clay has no webhook " << id
                    << " (404); 'clayhook webhooks list' shows the registered ones\n";
                return kExitFailed;
            }
            out << "deleted webhook " << id << "\n";
            return kExitOk;
        }

        std::string raw;
        std::vector<ClayWebhook> hooks = api.list_webhooks(&raw);
        if (a.has("--json")) {
            out << json::dump(without_secrets(json::parse(raw))) << "\n";
            return kExitOk;
        }
        if (hooks.empty()) {
            out << "no webhooks registered at " << api.base_url() << "\n";
            return kExitOk;
        }
        std::vector<std::array<std::string, 5>> rows{{"ID", "TABLE", "EVENTS", "URL", "CREATED"}};
        for (const auto& w : hooks)
            rows.push_back({w.id, w.table_id, join(w.events, ","), w.url, w.created_at});
        std::array<size_t, 5> width{};
        for (const auto& r : rows)
            for (size_t c = 0; c < r.size(); ++c)
                width[c] = std::max(width[c], r[c].size());
        for (const auto& r : rows) {
            std::string line;
            for (size_t c = 0; c < r.size(); ++c) {
                line += r[c];
                if (c + 1 < r.size()) line += std::string(width[c] - r[c].size() + 2, ' ');
            }
            line.erase(line.find_last_not_of(' ') + 1);
            out << line << "\n";
        }
        return kExitOk;
    } catch (const ClayApiError& e) {
        return report_api_error(e, cmd, err);
    }
}

// ---------------------------------------------------------------------------
// sign | send

std::string random_hex(size_t bytes) {
    std::vector<unsigned char> buf(bytes);
    if (RAND_bytes(buf.data(), static_cast<int>(buf.size())) != 1) {
        // Delivery ids need uniqueness, not secrecy: the library RNG will do.
        std::random_device rd;
        for (auto& b : buf)
            b = static_cast<unsigned char>(rd());
    }
    return hex_lower(std::string_view(reinterpret_cast<const char*>(buf.data()), buf.size()));
}

std::string fresh_delivery_id() {
    return "msg_" + random_hex(16);
}

uint64_t random_number(uint64_t below) {
    std::random_device rd;
    std::uniform_int_distribution<uint64_t> dist(0, below - 1);
    return dist(rd);
}

// 2026-11-26T12:00:42.042Z
std::string iso_utc_millis(Clock::time_point t) {
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
    std::time_t secs = static_cast<std::time_t>(ms / 1000);
    std::tm tm{};
    ::gmtime_r(&secs, &tm);
    char buf[40];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
    char out[48];
    std::snprintf(out, sizeof out, "%s.%03dZ", buf, static_cast<int>(ms % 1000));
    return out;
}

// A delivery shaped like the examples in docs/contracts.md, with a
// fresh row id (or export/workflow id) and timestamp so the host's
// idempotency key (event, row_id, timestamp) never takes it for a retry.
std::string sample_body(std::string_view type) {
    using json::Value;
    const uint64_t n = random_number(100'000'000);
    char row[32];
    std::snprintf(row, sizeof row, "row_%08llu", static_cast<unsigned long long>(n));
    const std::string num = std::to_string(n);
    const std::string table = "t_abc123";

    Value v = Value::object();
    v.set("event", std::string(type));
    v.set("table_id", table);
    if (type == "enrichment.completed") {
        v.set("row_id", row);
        v.set("timestamp", iso_utc_millis(Clock::now()));
        Value company = Value::object();
        company.set("name", "Company " + num);
        company.set("domain", "company" + num + ".com");
        company.set("industry", "Software");
        company.set("employee_count", 1200);
        Value linkedin = Value::object();
        linkedin.set("url", "https://www.linkedin.com/in/person" + num);
        linkedin.set("title", "VP Sales");
        Value enrichment = Value::object();
        enrichment.set("provider", "clearbit");
        enrichment.set("column", "Company Enrichment");
        enrichment.set("credits_used", 2);
        Value data = Value::object();
        data.set("email", "person" + num + "@example.com");
        data.set("full_name", "Person " + num);
        data.set("company", std::move(company));
        data.set("linkedin", std::move(linkedin));
        data.set("enrichment", std::move(enrichment));
        v.set("data", std::move(data));
    } else if (type == "enrichment.failed") {
        v.set("row_id", row);
        v.set("timestamp", iso_utc_millis(Clock::now()));
        Value error = Value::object();
        error.set("code", "PROVIDER_TIMEOUT");
        error.set("message", "Provider did not answer in 30s");
        error.set("column", "Email Finder");
        v.set("error", std::move(error));
    } else if (type == "table.row.created") {
        v.set("row_id", row);
        v.set("timestamp", iso_utc_millis(Clock::now()));
        Value data = Value::object();
        data.set("email", "person" + num + "@example.com");
        data.set("company_domain", "company" + num + ".com");
        v.set("data", std::move(data));
    } else if (type == "table.row.updated") {
        v.set("row_id", row);
        v.set("timestamp", iso_utc_millis(Clock::now()));
        Value title = Value::object();
        title.set("old", "AE");
        title.set("new", "VP Sales");
        Value changed = Value::object();
        changed.set("title", std::move(title));
        v.set("changed_fields", std::move(changed));
    } else if (type == "table.export.completed") {
        std::string id = "exp_" + num;
        v.set("export_id", id);
        v.set("timestamp", iso_utc_millis(Clock::now()));
        v.set("export_url", "https://exports.example.com/" + table + "/" + id + ".csv");
        v.set("row_count", 1200);
        v.set("format", "csv");
    } else {  // workflow.completed
        v.set("workflow_id", "wf_" + num);
        v.set("timestamp", iso_utc_millis(Clock::now()));
        Value results = Value::object();
        results.set("rows_processed", 1200);
        results.set("errors", 3);
        v.set("results", std::move(results));
    }
    return json::dump(v);
}

bool read_body(const std::string& from, std::string& body, std::string& problem) {
    if (from == "-") {
        body.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
        return true;
    }
    std::ifstream in(from, std::ios::binary);
    if (!in) {
        problem = "cannot read " + from + ": " + std::strerror(errno);
        return false;
    }
    body.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    return true;
}

// The config and the chosen source, or an exit code after saying why not.
struct Loaded {
    Config config;
    const SourceConfig* source = nullptr;
};

std::optional<int> load_source(const Args& a, std::string_view cmd, std::string_view usage,
                               Loaded& l, std::ostream& err) {
    std::string file = a.get("--config").value_or(default_config_file());
    try {
        l.config = load_config(file, LoadOptions::with_bundled());
    } catch (const std::exception& e) {
        // ConfigError names file, line and key, never a secret's value.
        err << "clayhook " << cmd << ": " << e.what() << "\n";
        return kExitFailed;
    }
    std::vector<std::string> names;
    for (const auto& s : l.config.sources)
        names.push_back(s.name);
    auto want = a.get("--source");
    if (!want) {
        if (l.config.sources.size() != 1)
            return usage_error(err, cmd,
                               "--source is required: " + file + " has " +
                                   (names.empty() ? "no sources" : "sources " + join(names, ", ")),
                               usage);
        l.source = &l.config.sources[0];
    } else {
        for (const auto& s : l.config.sources)
            if (s.name == *want) l.source = &s;
        if (l.source == nullptr)
            return usage_error(err, cmd,
                               "no source '" + *want + "' in " + file + " (sources: " +
                                   (names.empty() ? "none" : join(names, ", ")) + ")",
                               usage);
    }
    bool any = false;
    for (const auto& s : l.source->verify.secrets)
        any |= s.resolved && !s.value.empty();
    if (!any) {
        err << "clayhook " << cmd << ": source " << l.source->name
            << " has no usable secret to sign with:\n";
        for (const auto& s : l.source->verify.secrets)
            err << "  " << s.pos.str() << ": " << s.ref << ": "
                << (s.resolved ? "resolves to an empty value" : s.error) << "\n";
        return kExitFailed;
    }
    return std::nullopt;
}

// "signed with source 'clay' secret #1 from environment variable
// CLAY_WEBHOOK_SECRET": which of the source's secrets sign_headers uses (the
// first usable one) and where its value came from, never the value.
std::string signing_secret_text(const SourceConfig& source) {
    const auto& secrets = source.verify.secrets;
    for (size_t i = 0; i < secrets.size(); ++i) {
        const Secret& s = secrets[i];
        if (!s.resolved || s.value.empty()) continue;
        std::string from;
        if (s.origin.rfind("env ", 0) == 0)
            from = "environment variable " + s.origin.substr(4);
        else if (!s.origin.empty())
            from = s.origin;  // "file /abs/path"
        else
            from = "'" + s.ref + "'";
        std::string text = "signed with source '" + source.name + "' secret #" +
                           std::to_string(i + 1) + " from " + from;
        // A fallback taken here may not be the one the host takes.
        if (s.ref.find(":-") != std::string::npos) text += " (of '" + s.ref + "')";
        return terminal_safe(text);
    }
    return "signed with source '" + terminal_safe(source.name) + "'";
}

// Signs with the source's first usable secret, the one a real sender would
// hold. sign_headers' messages name the secret by reference only.
std::optional<HttpHeaders> sign_for(const SourceConfig& source, std::string_view body,
                                    Clock::time_point now, const std::string& id,
                                    std::string_view cmd, std::ostream& err) {
    try {
        auto signed_headers = sign_headers(source.verify, body, now, id);
        return HttpHeaders(signed_headers.begin(), signed_headers.end());
    } catch (const std::exception& e) {
        err << "clayhook " << cmd << ": source " << source.name << ": " << e.what() << "\n";
        return std::nullopt;
    }
}

int sign_command(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
    Args a;
    if (auto problem = parse_args(args, 1, {"--config", "--source", "--timestamp", "--id"}, {}, a);
        !problem.empty())
        return usage_error(err, "sign", problem, command_usage("sign"));
    if (a.positional.size() != 1)
        return usage_error(
            err, "sign",
            a.positional.empty() ? "BODY_FILE (or - for stdin) is required" : "one BODY_FILE only",
            command_usage("sign"));
    Clock::time_point now = Clock::now();
    if (auto ts = a.get("--timestamp")) {
        char* end = nullptr;
        errno = 0;
        long long secs = std::strtoll(ts->c_str(), &end, 10);
        if (ts->empty() || *end != '\0' || errno != 0 || secs < 0)
            return usage_error(err, "sign", "--timestamp takes Unix seconds",
                               command_usage("sign"));
        now = Clock::time_point(std::chrono::seconds(secs));
    }
    Loaded l;
    if (auto code = load_source(a, "sign", command_usage("sign"), l, err)) return *code;
    std::string body, problem;
    if (!read_body(a.positional[0], body, problem)) {
        err << "clayhook sign: " << problem << "\n";
        return kExitFailed;
    }
    auto headers =
        sign_for(*l.source, body, now, a.get("--id").value_or(fresh_delivery_id()), "sign", err);
    if (!headers) return kExitFailed;

    for (const auto& [name, value] : *headers) {
        if (l.source->verify.scheme == VerifyScheme::token) {
            // The token scheme's header is the secret itself: the one header
            // sign will not print. `send` attaches it without showing it.
            std::string ref;
            for (const auto& s : l.source->verify.secrets)
                if (s.resolved && !s.value.empty()) {
                    ref = s.ref;
                    break;
                }
            out << name << ": <the token from " << ref << ", not printed>\n";
            err << "clayhook sign: the token scheme sends the secret itself as " << name
                << ", so it is not printed; 'clayhook send' attaches it for you\n";
            continue;
        }
        out << name << ": " << value << "\n";
    }
    return kExitOk;
}

// http://127.0.0.1:8080/webhooks/clay from the listener config: a wildcard
// address is reached over loopback; IPv6 literals need brackets.
std::optional<std::string> default_send_url(const Config& c, const SourceConfig& s,
                                            std::string& problem) {
    if (c.listener.port == 0) {
        problem = "listener.port is 0 (picked at start), so the host's URL is unknown: pass --url";
        return std::nullopt;
    }
    std::string host = c.listener.address;
    if (host.empty() || host == "0.0.0.0")
        host = "127.0.0.1";
    else if (host == "::" || host == "[::]")
        host = "[::1]";
    else if (host.find(':') != std::string::npos && host.front() != '[')
        host = "[" + host + "]";
    return std::string(c.listener.tls.enabled() ? "https" : "http") + "://" + host + ":" +
           std::to_string(c.listener.port) + s.path;
}

int send_command(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
    Args a;
    if (auto problem = parse_args(args, 1, {"--config", "--source", "--url", "--sample"}, {}, a);
        !problem.empty())
        return usage_error(err, "send", problem, command_usage("send"));
    auto sample = a.get("--sample");
    if (sample && !a.positional.empty())
        return usage_error(err, "send", "give BODY_FILE or --sample, not both",
                           command_usage("send"));
    if (!sample && a.positional.size() != 1)
        return usage_error(err, "send",
                           a.positional.empty()
                               ? "BODY_FILE (or - for stdin) or --sample TYPE is required"
                               : "one BODY_FILE only",
                           command_usage("send"));
    std::vector<std::string> types;
    if (sample) {
        if (*sample == "all") {
            types = clay_event_catalogue();
        } else if (is_clay_event_type(*sample)) {
            types.push_back(*sample);
        } else {
            return usage_error(err, "send",
                               "unknown --sample '" + *sample + "': one of " +
                                   join(clay_event_catalogue(), ", ") + ", or all",
                               command_usage("send"));
        }
    }

    Loaded l;
    if (auto code = load_source(a, "send", command_usage("send"), l, err)) return *code;
    std::string url;
    if (auto u = a.get("--url")) {
        url = *u;
    } else {
        std::string problem;
        auto d = default_send_url(l.config, *l.source, problem);
        if (!d) return usage_error(err, "send", problem, command_usage("send"));
        url = *d;
    }

    // (label, body) per delivery: one from the file, or one sample per type.
    std::vector<std::pair<std::string, std::string>> deliveries;
    if (sample) {
        for (const auto& t : types)
            deliveries.emplace_back(t, sample_body(t));
    } else {
        std::string body, problem;
        if (!read_body(a.positional[0], body, problem)) {
            err << "clayhook send: " << problem << "\n";
            return kExitFailed;
        }
        deliveries.emplace_back("", std::move(body));
    }

    bool all_ok = true;
    bool told_secret = false;  // the 401 hint, once
    for (const auto& [type, body] : deliveries) {
        auto headers = sign_for(*l.source, body, Clock::now(), fresh_delivery_id(), "send", err);
        if (!headers) return kExitFailed;
        headers->emplace_back("Content-Type", "application/json");
        headers->emplace_back("User-Agent", "clayhook-send");
        // A source that takes the event type from a header gets it there too.
        const auto& et = l.source->event_type;
        if (!type.empty() && et.from == EventTypeFrom::header && !et.header.empty())
            headers->emplace_back(et.header, type);

        HttpResponse r;
        try {
            r = http_exchange("POST", url, *headers, body, kSendTimeout);
        } catch (const BadUrlError& e) {
            return usage_error(err, "send", e.what(), command_usage("send"));
        } catch (const NetworkError& e) {
            err << "clayhook send: cannot reach the host at " << e.url() << ": " << e.what()
                << "\n";
            return kExitNetwork;
        }
        if (deliveries.size() > 1) out << type << ": ";
        out << "HTTP " << r.status << (r.reason.empty() ? "" : " " + r.reason) << "\n";
        if (!r.body.empty()) out << r.body << (r.body.back() == '\n' ? "" : "\n");
        out.flush();
        all_ok &= r.status >= 200 && r.status < 300;
        if (r.status == 401 && !told_secret) {
            told_secret = true;
            err << "clayhook send: the host refused the signature (401); "
                << signing_secret_text(*l.source) << " \u2014 is the host using the same secret?\n";
        }
    }
    return all_ok ? kExitOk : kExitFailed;
}

}  // namespace

int clay_command(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
    const std::string cmd = args.empty() ? "" : args[0];
    if (cmd == "register") return register_command(args, out, err);
    if (cmd == "webhooks") return webhooks_command(args, out, err);
    if (cmd == "sign") return sign_command(args, out, err);
    if (cmd == "send") return send_command(args, out, err);
    err << "clayhook: unknown command '" << cmd << "'\n";
    return kExitUsage;
}

}  // namespace clayhook
