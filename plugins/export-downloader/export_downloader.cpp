// export-downloader: on table.export.completed, downloads the export's file
// (export_url) into a directory, streaming it to disk, and checks it.
//
// Safe by default: https only, an allow-list of host names, no private,
// loopback or link-local addresses (checked after DNS, and the connection
// goes to the very address that was checked), redirects re-checked hop by
// hop, a size cap and timeouts. Atomic: a temporary file, fsync, rename.
// Idempotent: an export already on disk is not fetched again. Beside each
// download NAME go its side files NAME.sha256 and, for a file that failed a
// check, NAME.rejected; no download may be named like one.
//
// This file is the plugin: its config, the event (the job), the attempt
// with its redirects, retries and metrics. The pieces it is built from are
// units of their own, in namespace clayhook::exportdl, tested one by one
// (tests/plugins/export_downloader/):
//   url.hpp             parsing, the canonical host, a Location against a base
//   address_policy.hpp  addresses, ranges, the special ranges, the allow-lists,
//                       resolution with the policy applied
//   http_reader.hpp     the time budget, the status line and header fields,
//                       the body's framing, Retry-After
//   csv_counter.hpp     RFC 4180 records, counted while streaming
//   atomic_file.hpp     the temporary file, fsync, rename, the folder's fsync
//   sha256.hpp          SHA-256
//   outcome.hpp         fail or retry, as thrown
//
// config (declared in ExportDownloader::config, docs/plugins/export-downloader.md):
//   directory                where files go (required; created if missing)
//   allowed_hosts            host names ("exports.example.com") and suffixes
//                            (".example.com") (required, non-empty)
//   allow_private_addresses  default false
//   allowed_cidrs            address ranges allowed even if private (default [])
//   allow_http               default false
//   max_bytes                a size, default 1GiB
//   max_redirects            default 3
//   timeout_ms               connect and each wait for data (default 60s)
//   max_duration_ms          a whole attempt (default 30m)
//   ca_file                  an extra CA bundle (PEM); TLS is always verified
// The host checks the config against the declaration first (ABI 1.1): unknown
// keys, types, required keys; it fills in the defaults and hands sizes over
// as integer bytes and durations as integer milliseconds ("30s" in the YAML,
// or a bare number of milliseconds: the two *_ms keys are declared
// duration_ms, as they always took integer ms).
#include <clayhook/plugin.hpp>

#include "address_policy.hpp"
#include "atomic_file.hpp"
#include "csv_counter.hpp"
#include "http_reader.hpp"
#include "outcome.hpp"
#include "sha256.hpp"
#include "text.hpp"
#include "url.hpp"

#include "../common/units.hpp"  // format_duration, for the messages

#include <Poco/Exception.h>
#include <Poco/InflatingStream.h>
#include <Poco/Net/Context.h>
#include <Poco/Net/NetException.h>
#include <Poco/Net/SSLException.h>
#include <Poco/Net/SecureStreamSocket.h>
#include <Poco/Net/StreamSocket.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <istream>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace {

namespace fs = std::filesystem;
namespace json = clayhook::json;
using namespace clayhook::exportdl;
using std::chrono::milliseconds;

constexpr int64_t kDefaultMaxBytes = int64_t{1} << 30;
constexpr int64_t kDefaultMaxRedirects = 3;
constexpr int64_t kDefaultTimeoutMs = 60'000;
constexpr int64_t kDefaultMaxDurationMs = 30 * 60'000;
constexpr milliseconds kBusyRetry{5000};

// The side files of a download NAME: NAME.sha256 (its checksum) and
// NAME.rejected (a file that failed a check, set aside). parse_event refuses
// every download name that ends in one of these, so that a download can
// never pass for another's side file, nor be overwritten by one.
constexpr std::string_view kSumSuffix = ".sha256";
constexpr std::string_view kRejectedSuffix = ".rejected";
constexpr std::string_view kSideSuffixes[] = {kSumSuffix, kRejectedSuffix};

// ---------------------------------------------------------------------------
// The event

struct Job {
    std::string table_id;
    std::string export_id;
    std::string url;  // as given (may carry a token: never logged)
    std::string format;
    std::optional<int64_t> row_count;
    std::string file_name;  // <table_id>_<export_id>.<format>, sanitised
};

std::string required_string(const json::Value& doc, const char* field) {
    const json::Value* v = doc.find(field);
    if (v == nullptr || v->is_null()) refuse(std::string("event field '") + field + "' is missing");
    if (!v->is_string() || v->as_string().empty())
        refuse(std::string("event field '") + field + "' must be a non-empty string");
    return v->as_string();
}

Job parse_event(std::string_view body) {
    json::Value doc;
    try {
        doc = json::parse(body);
    } catch (const std::exception& e) {
        refuse(std::string("the event body is not JSON: ") + e.what());
    }
    if (!doc.is_object()) refuse("the event body is not a JSON object");
    Job job;
    job.table_id = required_string(doc, "table_id");
    job.export_id = required_string(doc, "export_id");
    job.url = required_string(doc, "export_url");
    job.format = "csv";
    if (const json::Value* f = doc.find("format"); f != nullptr && !f->is_null()) {
        bool ok = f->is_string() && !f->as_string().empty() && f->as_string().size() <= 16 &&
                  std::all_of(f->as_string().begin(), f->as_string().end(), [](char c) {
                      return std::isalnum(static_cast<unsigned char>(c)) != 0;
                  });
        if (!ok) refuse("event field 'format' must be 1 to 16 letters or digits (like \"csv\")");
        job.format = lower(f->as_string());
    }
    if (const json::Value* r = doc.find("row_count"); r != nullptr && !r->is_null()) {
        if (!r->is_integer() || r->as_int64() < 0)
            refuse("event field 'row_count' must be a non-negative integer");
        job.row_count = r->as_int64();
    }
    if (job.format == "csv" && !job.row_count)
        refuse("event field 'row_count' is missing (it is needed to check a CSV export)");

    bool changed = false;
    std::string base =
        clean_name_part(job.table_id, changed) + "_" + clean_name_part(job.export_id, changed);
    if (base.front() == '.' || base.front() == '-') {
        base.front() = '_';  // no hidden files, nothing that reads as an option
        changed = true;
    }
    if (base.size() > 160) {
        base.resize(160);
        changed = true;
    }
    // Two different ids that clean to the same text must not share a file.
    if (changed) base += "-" + sha256_hex(job.table_id + '\0' + job.export_id).substr(0, 12);
    job.file_name = base + "." + job.format;
    // The name ends in "." + format, so only the format can make it look
    // like a side file (t_1 + e_1.csv + sha256 would be t_1_e_1.csv.sha256).
    for (std::string_view suffix : kSideSuffixes)
        if (job.file_name.ends_with(suffix))
            refuse("event field 'format' may not be '" + std::string(suffix.substr(1)) +
                   "': names ending in " + std::string(suffix) +
                   " are taken by the plugin's side files");
    return job;
}

// What one successful transfer produced.
struct Transfer {
    uint64_t bytes = 0;       // written to disk (after decompression)
    uint64_t wire_bytes = 0;  // received as body bytes
    uint64_t rows = 0;
    bool open_quote = false;
    bool gunzipped = false;
    std::string sha256;
};

// ---------------------------------------------------------------------------

class ExportDownloader {
  public:
    static constexpr const char* name = "export-downloader";
    static constexpr const char* version = "1.0.0";
    static constexpr const char* description =
        "downloads table exports (table.export.completed) into a directory, safely";
    static constexpr const char* events[] = {"table.export.completed"};
    static constexpr uint32_t max_concurrency = 4;
    static constexpr clayhook::ConfigKey config[] = {
        clayhook::config::required(clayhook::ConfigType::string, "directory",
                                   "Where the files go; created (with its parents) when the "
                                   "plugin starts."),
        clayhook::config::required(clayhook::ConfigType::string_list, "allowed_hosts",
                                   "The hosts the export URL and every redirect may name, not "
                                   "empty: exact names, IP addresses, suffixes like "
                                   "`.example.com`."),
        clayhook::config::optional(clayhook::ConfigType::boolean, "allow_private_addresses",
                                   "false",
                                   "`true` allows private, loopback, link-local and the other "
                                   "refused address ranges."),
        clayhook::config::optional(clayhook::ConfigType::string_list, "allowed_cidrs", "[]",
                                   "Address ranges allowed even though they are refused ones, "
                                   "like `10.20.0.0/16`."),
        clayhook::config::optional(clayhook::ConfigType::boolean, "allow_http", "false",
                                   "`true` accepts `http://` URLs and redirects; else `https://` "
                                   "only."),
        clayhook::config::optional(clayhook::ConfigType::size, "max_bytes", "1GiB",
                                   "The largest file accepted, as received and after "
                                   "decompression; at least 1 byte."),
        clayhook::config::optional(clayhook::ConfigType::integer, "max_redirects", "3",
                                   "Redirects followed per attempt, 0 to 20."),
        clayhook::config::optional(clayhook::ConfigType::duration_ms, "timeout_ms", "60s",
                                   "The most one wait may last (connecting, TLS, headers, each "
                                   "read); 1ms to 1h."),
        clayhook::config::optional(clayhook::ConfigType::duration_ms, "max_duration_ms", "30m",
                                   "The most a whole attempt may last, redirects included; 1ms "
                                   "to 7d."),
        clayhook::config::optional(clayhook::ConfigType::string, "ca_file", nullptr,
                                   "A PEM bundle of CA certificates trusted in addition to the "
                                   "system's; it must exist."),
    };

    ExportDownloader(clayhook::Host& host, const json::Value& cfg) : host_(host) {
        // Unknown keys, missing required keys and wrong types the host has
        // refused already, against `config` above; the ranges are checked here.
        if (!cfg.is_object()) throw std::runtime_error("config: must be a mapping");

        const json::Value* dir = cfg.find("directory");
        if (dir == nullptr || !dir->is_string() || dir->as_string().empty())
            throw std::runtime_error("config: 'directory' is required (a path)");
        dir_ = fs::path(dir->as_string());
        std::error_code ec;
        fs::create_directories(dir_, ec);
        if (ec || !fs::is_directory(dir_))
            throw std::runtime_error(
                "config: 'directory' " + dir_.string() +
                " cannot be created: " + (ec ? ec.message() : std::string("not a directory")));

        const json::Value* hosts = cfg.find("allowed_hosts");
        if (hosts == nullptr || !hosts->is_array() || hosts->size() == 0)
            throw std::runtime_error(
                "config: 'allowed_hosts' is required: a non-empty list of host names "
                "(\"exports.example.com\") or suffixes (\".example.com\")");
        std::vector<std::string> allowed_hosts;
        for (const auto& h : hosts->items()) {
            if (!h.is_string()) throw std::runtime_error("config: 'allowed_hosts' holds strings");
            allowed_hosts.push_back(normalise_allowed_host(h.as_string()));
        }

        bool allow_private = get_bool(cfg, "allow_private_addresses", false);
        allow_http_ = get_bool(cfg, "allow_http", false);
        std::vector<Cidr> allowed_cidrs;
        if (const json::Value* c = cfg.find("allowed_cidrs"); c != nullptr && !c->is_null()) {
            if (!c->is_array())
                throw std::runtime_error(
                    "config: 'allowed_cidrs' is a list like [\"10.1.0.0/16\"]");
            for (const auto& item : c->items()) {
                auto cidr = item.is_string() ? parse_cidr(item.as_string()) : std::nullopt;
                if (!cidr)
                    throw std::runtime_error("config: 'allowed_cidrs': '" +
                                             (item.is_string() ? item.as_string() : "?") +
                                             "' is not an address range like 10.1.0.0/16");
                allowed_cidrs.push_back(*cidr);
            }
        }
        policy_ = AddressPolicy(std::move(allowed_hosts), std::move(allowed_cidrs), allow_private);
        max_bytes_ =
            static_cast<uint64_t>(get_int(cfg, "max_bytes", kDefaultMaxBytes, 1, INT64_MAX));
        max_redirects_ =
            static_cast<int>(get_int(cfg, "max_redirects", kDefaultMaxRedirects, 0, 20));
        timeout_ = get_ms(cfg, "timeout_ms", kDefaultTimeoutMs, 1, 3'600'000);
        max_duration_ =
            get_ms(cfg, "max_duration_ms", kDefaultMaxDurationMs, 1, 7 * 24 * 3'600'000LL);

        std::string ca_file;
        if (const json::Value* ca = cfg.find("ca_file"); ca != nullptr && !ca->is_null()) {
            if (!ca->is_string() || ca->as_string().empty())
                throw std::runtime_error("config: 'ca_file' is a path to a PEM file");
            ca_file = ca->as_string();
            if (!fs::is_regular_file(ca_file, ec))
                throw std::runtime_error("config: 'ca_file' " + ca_file + " is not a file");
        }
        Poco::Net::Context::Params params;
        params.caLocation = ca_file;  // in addition to the system's CAs
        params.loadDefaultCAs = true;
        // VERIFY_STRICT: the chain must lead to a trusted CA (no
        // invalid-certificate handler is installed, so a failure is never
        // waved through), and the host name is checked even for localhost,
        // which Poco skips under VERIFY_RELAXED.
        params.verificationMode = Poco::Net::Context::VERIFY_STRICT;
        params.verificationDepth = 9;
        try {
            context_ = new Poco::Net::Context(Poco::Net::Context::TLS_CLIENT_USE, params);
            context_->requireMinimumProtocol(Poco::Net::Context::PROTO_TLSV1_2);
            context_->enableExtendedCertificateVerification(true);
        } catch (const Poco::Exception& e) {
            throw std::runtime_error("config: cannot set up TLS" +
                                     (ca_file.empty() ? std::string() : " with " + ca_file) + ": " +
                                     e.displayText());
        }
        remove_stale_parts();
        host_.info("downloading exports to " + dir_.string() + " from " +
                   std::to_string(policy_.allowed_hosts().size()) + " allowed host pattern(s)");
    }

    clayhook::Result handle(const clayhook::Event& event) {
        bool skipped = false;
        clayhook::Result r = attempt(event, skipped);
        const char* result = r.status() != CLAYHOOK_DONE ? "failed" : skipped ? "skipped" : "ok";
        host_.counter_add("downloads_total", 1, std::string("result=") + result);
        return r;
    }

  private:
    // Temporary files of attempts that cannot still be running (a crash, a
    // call abandoned at shutdown): nothing wrote to them for longer than any
    // attempt may last.
    void remove_stale_parts() {
        const auto cutoff =
            fs::file_time_type::clock::now() - max_duration_ - std::chrono::minutes(1);
        int removed = 0;
        std::error_code ec;
        for (const auto& entry : fs::directory_iterator(dir_, ec)) {
            std::string file = entry.path().filename().string();
            if (file.empty() || file.front() != '.' || file.find(".part-") == std::string::npos)
                continue;
            std::error_code fe;
            if (!entry.is_regular_file(fe) || entry.last_write_time(fe) > cutoff || fe) continue;
            if (fs::remove(entry.path(), fe)) ++removed;
        }
        if (removed > 0)
            host_.info("removed " + std::to_string(removed) + " stale temporary file(s) from " +
                       dir_.string());
    }

    static bool get_bool(const json::Value& cfg, const char* key, bool fallback) {
        const json::Value* v = cfg.find(key);
        if (v == nullptr || v->is_null()) return fallback;
        if (!v->is_bool())
            throw std::runtime_error(std::string("config: '") + key + "' is true or false");
        return v->as_bool();
    }
    static int64_t get_int(const json::Value& cfg, const char* key, int64_t fallback, int64_t min,
                           int64_t max) {
        const json::Value* v = cfg.find(key);
        if (v == nullptr || v->is_null()) return fallback;
        if (!v->is_integer() || v->as_int64() < min || v->as_int64() > max)
            throw std::runtime_error(std::string("config: '") + key + "' must be an integer from " +
                                     std::to_string(min) + " to " + std::to_string(max));
        return v->as_int64();
    }

    // A duration, handed over by the host as integer milliseconds.
    static milliseconds get_ms(const json::Value& cfg, const char* key, int64_t fallback,
                               int64_t min, int64_t max) {
        namespace units = clayhook_plugins::units;
        const json::Value* v = cfg.find(key);
        if (v == nullptr || v->is_null()) return milliseconds(fallback);
        if (!v->is_integer() || v->as_int64() < min || v->as_int64() > max)
            throw std::runtime_error(std::string("config: '") + key + "' must be from " +
                                     units::format_duration(milliseconds(min)) + " to " +
                                     units::format_duration(milliseconds(max)) + ", found " +
                                     (v->is_integer()
                                          ? units::format_duration(milliseconds(v->as_int64()))
                                          : json::dump(*v)));
        return milliseconds(v->as_int64());
    }

    // The checks a URL passes before anything is resolved.
    void check_url(const Url& url, const std::string& what) const {
        if (url.scheme == "http" && !allow_http_)
            refuse(what + " " + url.display() +
                   " uses http://, which is refused (only https:// unless allow_http is true)");
        if (!policy_.host_allowed(url.host))
            refuse(what + " " + url.display() + ": the host '" + url.host +
                   "' is not in allowed_hosts");
    }

    // Resolves, checks every address, connects to the first allowed one that
    // answers, and for https does the TLS handshake, verifying the
    // certificate against the host name.
    Poco::Net::StreamSocket connect(const Url& url, const Budget& budget) const {
        const std::vector<Resolved> usable = policy_.resolve_allowed(url.host, url.port);
        std::string errors;
        for (const auto& r : usable) {
            try {
                Poco::Net::StreamSocket socket;
                socket.connect(r.address, budget.next());
                socket.setReceiveTimeout(budget.next());
                socket.setSendTimeout(budget.next());
                socket.setNoDelay(true);
                if (url.scheme == "http") return socket;
                // SNI and the certificate check use the URL's host name,
                // while the TCP connection is the one just made to the
                // checked address: no second lookup.
                return Poco::Net::SecureStreamSocket::attach(socket, url.host, context_);
            } catch (const Poco::Net::SSLException&) {
                throw;  // a TLS failure is about the server, not the address
            } catch (const Poco::TimeoutException&) {
                errors += (errors.empty() ? "" : "; ") + r.ip.text() + ": timed out";
            } catch (const Poco::Exception& e) {
                errors += (errors.empty() ? "" : "; ") + r.ip.text() + ": " + e.displayText();
            }
        }
        try_later("cannot connect to " + url.authority() + " (" + errors + ")");
    }

    clayhook::Result attempt(const clayhook::Event& event, bool& skipped) {
        Job job;
        try {
            job = parse_event(event.body);
        } catch (const Outcome& o) {
            host_.warn("event " + std::string(event.id) + " refused: " + o.what());
            return clayhook::Result::fail(o.what());
        }
        const fs::path final_path = dir_ / job.file_name;
        if ((skipped = already_there(final_path))) return clayhook::Result::done();

        // Two calls for the same export (a duplicate, a replay) would fetch
        // it twice; the second waits for the first.
        {
            std::lock_guard lock(mu_);
            if (!in_flight_.insert(job.file_name).second)
                return clayhook::Result::retry(
                    job.file_name + " is being downloaded by another call", kBusyRetry);
        }
        struct Release {
            ExportDownloader* self;
            const std::string& name;
            ~Release() {
                std::lock_guard lock(self->mu_);
                self->in_flight_.erase(name);
            }
        } release{this, job.file_name};
        if ((skipped = already_there(final_path))) return clayhook::Result::done();

        std::string shown = redact(job.url);
        try {
            Transfer t = download(job, final_path, shown);
            host_.info("downloaded " + shown + " to " + final_path.string() + ": " +
                       std::to_string(t.bytes) + " bytes" + (t.gunzipped ? " (gunzipped)" : "") +
                       (job.format == "csv" ? ", " + std::to_string(t.rows) + " data rows" : "") +
                       ", sha256 " + t.sha256);
            return clayhook::Result::done();
        } catch (const Outcome& o) {
            host_.warn("download of " + shown + (o.final ? " failed: " : " will be retried: ") +
                       o.what());
            return o.final ? clayhook::Result::fail(o.what())
                           : clayhook::Result::retry(o.what(), o.after);
        }
    }

    bool already_there(const fs::path& final_path) {
        std::error_code ec;
        if (!fs::exists(final_path, ec)) return false;
        host_.info(final_path.string() + " is already there: not fetched again");
        return true;
    }

    // Follows redirects, streams the body into a temporary file, checks it,
    // and renames it into place. Throws an Outcome when it does not succeed.
    Transfer download(const Job& job, const fs::path& final_path, std::string& shown) {
        Url url = parse_url(job.url, "export_url");
        shown = url.display();
        Budget budget(timeout_, max_duration_);
        TempFile tmp(dir_, job.file_name);
        Transfer t;
        uint64_t wire = 0;
        try {
            for (int hop = 0;; ++hop) {
                check_url(url, hop == 0 ? "export_url" : "the redirect to");
                std::optional<Url> next = fetch(url, budget, tmp, t, wire);
                if (!next) break;
                if (hop >= max_redirects_)
                    refuse("more than max_redirects (" + std::to_string(max_redirects_) +
                           ") redirects, the last to " + next->display());
                host_.info("following a redirect from " + url.display() + " to " + next->display());
                url = *next;
                shown = url.display();
            }
        } catch (const Outcome&) {
            count_bytes(wire);
            throw;
        } catch (const Poco::TimeoutException&) {
            count_bytes(wire);
            try_later(budget.timed_out(shown));
        } catch (const Poco::Net::CertificateValidationException& e) {
            count_bytes(wire);
            refuse("the TLS certificate of " + url.authority() + " was refused: " + e.message());
        } catch (const Poco::Net::SSLException& e) {
            count_bytes(wire);
            std::string m = e.displayText();
            if (m.find("certificate verify failed") != std::string::npos)
                refuse("the TLS certificate of " + url.authority() + " was refused: " + m);
            try_later("TLS with " + url.authority() + " failed: " + m);
        } catch (const Poco::Net::NoMessageException&) {
            count_bytes(wire);
            try_later(url.authority() + " closed the connection without answering");
        } catch (const Poco::Exception& e) {
            count_bytes(wire);
            try_later("fetching " + shown + " failed: " + e.displayText());
        } catch (const std::exception& e) {
            count_bytes(wire);
            try_later("fetching " + shown + " failed: " + e.what());
        }
        count_bytes(wire);
        tmp.finish();

        if (job.format == "csv") {
            std::string why;
            if (t.open_quote)
                why = "the CSV ends inside a quoted field";
            else if (static_cast<int64_t>(t.rows) != *job.row_count)
                why = "row count mismatch: the event says " + std::to_string(*job.row_count) +
                      " data rows, the file has " + std::to_string(t.rows) + " (header excluded)";
            if (!why.empty()) {
                fs::path aside = final_path;
                aside += kRejectedSuffix;
                tmp.rename_to(aside);
                fsync_dir(dir_);
                refuse(why + "; the file is kept as " + aside.string() + " for a person to check");
            }
        }

        fs::path sum_path = final_path;
        sum_path += kSumSuffix;
        {
            TempFile sum(dir_, job.file_name + std::string(kSumSuffix));
            std::string line = t.sha256 + "  " + job.file_name + "\n";
            sum.write(line.data(), line.size());
            sum.finish();
            sum.rename_to(sum_path);
        }
        tmp.rename_to(final_path);
        fsync_dir(dir_);
        return t;
    }

    void count_bytes(uint64_t wire) {
        if (wire > 0) host_.counter_add("bytes_total", static_cast<double>(wire));
    }

    // One request. Returns the next URL for a redirect, nullopt when the body
    // was written to `tmp`.
    std::optional<Url> fetch(const Url& url, const Budget& budget, TempFile& tmp, Transfer& t,
                             uint64_t& wire) const {
        Poco::Net::StreamSocket socket = connect(url, budget);
        std::string request = "GET " + url.target +
                              " HTTP/1.1\r\n"
                              "Host: " +
                              url.authority() +
                              "\r\n"
                              "User-Agent: clayhook-export-downloader/1.0\r\n"
                              "Accept: */*\r\n"
                              "Accept-Encoding: gzip\r\n"
                              "Connection: close\r\n\r\n";
        for (size_t sent = 0; sent < request.size();) {
            socket.setSendTimeout(budget.next());
            int n =
                socket.sendBytes(request.data() + sent, static_cast<int>(request.size() - sent));
            if (n <= 0) try_later("sending the request to " + url.authority() + " failed");
            sent += static_cast<size_t>(n);
        }

        SocketBuf conn(socket, budget);
        const ResponseHead resp = read_head(conn);
        const int status = resp.status;
        const std::string where = " from " + url.display();

        if (status == 301 || status == 302 || status == 303 || status == 307 || status == 308) {
            std::string location = resp.get("Location", "");
            if (trim(location).empty())
                refuse("HTTP " + std::to_string(status) + " without a Location" + where);
            Url next = parse_url(resolve_location(url, location), "the redirect");
            if (next.scheme == "http" && url.scheme == "https" && !allow_http_)
                refuse("the redirect from " + url.display() + " to " + next.display() +
                       " downgrades to http://, which is refused");
            return next;
        }
        if (status == 429 || status == 503 || status == 408 || status >= 500) {
            std::optional<milliseconds> after;
            if (status == 429 || status == 503)
                after = parse_retry_after(resp.get("Retry-After", ""));
            try_later("HTTP " + std::to_string(status) + " " + printable(resp.reason) + where +
                          (after ? " (Retry-After: " + std::to_string(after->count() / 1000) + " s)"
                                 : ""),
                      after.value_or(milliseconds(0)));
        }
        if (status >= 400)
            refuse("HTTP " + std::to_string(status) + " " + printable(resp.reason) + where);
        if (status != 200)
            refuse("unexpected HTTP " + std::to_string(status) + " " + printable(resp.reason) +
                   where);

        const BodyFraming framing = body_framing(resp, max_bytes_, where);

        // Content coding: gzip as announced, or as recognised by its magic
        // bytes (a .gz file served as is).
        std::string coding = lower(trim(resp.get("Content-Encoding", "")));
        BodyBuf body(conn, framing.framing, framing.length, max_bytes_);
        std::istream body_in(&body);
        body_in.exceptions(std::ios::badbit);
        Sha256 sha;
        CsvCounter csv;
        std::vector<char> buf(kBufferSize);
        std::unique_ptr<Poco::InflatingInputStream> inflater;
        std::optional<Poco::InflatingStreamBuf::StreamType> inflate;
        try {
            if (coding == "gzip" || coding == "x-gzip") {
                inflate = Poco::InflatingStreamBuf::STREAM_GZIP;
            } else if (coding == "deflate") {
                inflate = Poco::InflatingStreamBuf::STREAM_ZLIB;
            } else if (coding.empty() || coding == "identity") {
                if (body.peek(2) == std::string_view("\x1f\x8b", 2))
                    inflate = Poco::InflatingStreamBuf::STREAM_GZIP;
            } else {
                refuse("unsupported Content-Encoding '" + printable(coding) + "'" + where);
            }

            std::istream* src = &body_in;
            if (inflate) {
                inflater = std::make_unique<Poco::InflatingInputStream>(body_in, *inflate);
                inflater->exceptions(std::ios::badbit);
                src = inflater.get();
                t.gunzipped = true;
            }
            for (;;) {
                src->read(buf.data(), static_cast<std::streamsize>(buf.size()));
                auto n = static_cast<size_t>(src->gcount());
                if (n > 0) {
                    t.bytes += n;
                    if (t.bytes > max_bytes_)
                        refuse("the export is too large: more than max_bytes (" +
                               std::to_string(max_bytes_) + ") bytes" +
                               (inflate ? " after decompression" : "") + where);
                    sha.update(buf.data(), n);
                    csv.feed(buf.data(), n);
                    tmp.write(buf.data(), n);
                }
                if (!*src) break;
            }
            // After the end of a compressed stream, read what is left of the
            // body, so that a body cut short is still noticed.
            if (inflater && body_in.good()) {
                while (body_in.read(buf.data(), static_cast<std::streamsize>(buf.size())) ||
                       body_in.gcount() > 0) {
                }
            }
        } catch (const Poco::IOException& e) {
            wire = body.wire_bytes();
            if (inflate && dynamic_cast<const Poco::Net::NetException*>(&e) == nullptr)
                try_later("the compressed body could not be decompressed (" + e.displayText() +
                          ")" + where);
            throw;
        } catch (...) {
            wire = body.wire_bytes();
            throw;
        }
        wire = body.wire_bytes();
        t.wire_bytes = wire;
        t.rows = csv.data_rows();
        t.open_quote = csv.open_quote();
        t.sha256 = sha.hex();
        return std::nullopt;
    }

    clayhook::Host& host_;
    fs::path dir_;
    AddressPolicy policy_;
    bool allow_http_ = false;
    uint64_t max_bytes_ = 0;
    int max_redirects_ = 0;
    milliseconds timeout_{0};
    milliseconds max_duration_{0};
    Poco::Net::Context::Ptr context_;

    std::mutex mu_;
    std::set<std::string> in_flight_;
};

}  // namespace

CLAYHOOK_PLUGIN(ExportDownloader)
