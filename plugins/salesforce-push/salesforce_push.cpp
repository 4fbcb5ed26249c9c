// salesforce-push: upserts enriched Clay rows into a Salesforce object by an
// external id, so that a delivery handed over again never makes a second
// record. Built against plugin-api/ only (plus Poco for HTTP, through the
// bundled plugins' HTTP kit in plugins/common/, and OpenSSL for the JWT
// bearer signature), like any third party's.
//
// Each event is mapped to the object's fields by the shared FieldMap
// (plugins/common/field_map.hpp). One record goes out as
//   PATCH {instance}/services/data/{ver}/sobjects/{Object}/{ExtIdField}/{value}
// a batch as one sObject Collections upsert
//   PATCH {instance}/services/data/{ver}/composite/sobjects/{Object}/{ExtIdField}
// with allOrNone false, whose per-record results come back in request order.
// The access token (OAuth 2.0 client credentials or JWT bearer) is cached and
// fetched again once when Salesforce answers 401 INVALID_SESSION_ID.
// docs/plugins/salesforce-push.md has the config and the details.
//
// HTTP goes through plugins/common/http_kit.hpp: https:// (http:// only to a
// loopback address), ca_file added to the system's CAs, an answer of at most
// 1 MiB, Retry-After as seconds or an HTTP-date. The config is declared
// (SalesforcePush::config, ABI 1.1): the host checks it (unknown keys among
// them) and hands timeout_ms and limit_retry_ms (duration_ms: a bare number
// is ms) over as integer ms; a config handed to create() directly may still
// write them as "30s"-style strings.
#include <clayhook/plugin.hpp>

#include "field_map.hpp"
#include "http_kit.hpp"
#include "units.hpp"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace json = clayhook::json;
namespace http = clayhook_plugins::http;
namespace units = clayhook_plugins::units;
using clayhook::Result;
using clayhook_plugins::FieldMap;
using http::Endpoint;

namespace {

// ---- small helpers -------------------------------------------------------

// Percent-encodes everything but RFC 3986's unreserved characters: right for
// a URL path segment and for an application/x-www-form-urlencoded value.
std::string pct(std::string_view s) {
    static constexpr char kHex[] = "0123456789ABCDEF";
    std::string out;
    for (char ch : s) {
        const auto c = static_cast<unsigned char>(ch);
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '.' || c == '_' || c == '~') {
            out.push_back(ch);
        } else {
            out.push_back('%');
            out.push_back(kHex[c >> 4]);
            out.push_back(kHex[c & 15]);
        }
    }
    return out;
}

std::string base64url(std::string_view in) {
    static constexpr char kAlphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    std::string out;
    size_t i = 0;
    auto byte = [&](size_t k) { return static_cast<uint32_t>(static_cast<unsigned char>(in[k])); };
    for (; i + 3 <= in.size(); i += 3) {
        uint32_t n = (byte(i) << 16) | (byte(i + 1) << 8) | byte(i + 2);
        out += kAlphabet[(n >> 18) & 63];
        out += kAlphabet[(n >> 12) & 63];
        out += kAlphabet[(n >> 6) & 63];
        out += kAlphabet[n & 63];
    }
    if (in.size() - i == 1) {
        uint32_t n = byte(i) << 16;
        out += kAlphabet[(n >> 18) & 63];
        out += kAlphabet[(n >> 12) & 63];
    } else if (in.size() - i == 2) {
        uint32_t n = (byte(i) << 16) | (byte(i + 1) << 8);
        out += kAlphabet[(n >> 18) & 63];
        out += kAlphabet[(n >> 12) & 63];
        out += kAlphabet[(n >> 6) & 63];
    }
    return out;  // no padding (RFC 7515)
}

std::string openssl_error() {
    unsigned long e = ERR_get_error();
    ERR_clear_error();
    if (e == 0) return "unknown OpenSSL error";
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    return buf;
}

bool is_identifier(const std::string& s) {
    if (s.empty()) return false;
    return std::all_of(s.begin(), s.end(), [](char c) {
        return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
               c == '_';
    });
}

// A base URL, checked: https://, or http:// to a loopback address only (a
// test's fake). Request paths are sent exactly as built (an escaped '/'
// inside an external id stays escaped).
Endpoint endpoint(const std::string& url, const std::string& what) {
    try {
        return Endpoint::parse(url, http::AllowHttp::loopback);
    } catch (const http::UrlError& e) {
        throw std::runtime_error(what + " " + e.what());
    }
}

// What an HTTP call got (status 0: no usable answer at all, `error` says why).
struct Answer {
    int status = 0;
    std::string body;
    std::string limit_info;  // Sforce-Limit-Info
    std::optional<std::chrono::seconds> retry_after;
    std::string error;
    bool retryable = true;  // when status is 0: the kit's classification
};

// Salesforce's error list ([{"message","errorCode"|"statusCode","fields"}])
// as one line, and the first code in it.
struct SfErrors {
    std::string code;
    std::string text;
};
SfErrors sf_errors(const json::Value* list) {
    SfErrors out;
    if (list == nullptr || !list->is_array()) return out;
    for (const auto& e : list->items()) {
        if (!e.is_object()) continue;
        std::string code = e.get_string("errorCode", e.get_string("statusCode", ""));
        std::string msg = e.get_string("message", "");
        std::string fields;
        if (const json::Value* f = e.find("fields"); f && f->is_array())
            for (const auto& x : f->items())
                if (x.is_string()) fields += (fields.empty() ? "" : ", ") + x.as_string();
        if (out.code.empty()) out.code = code;
        if (!out.text.empty()) out.text += "; ";
        out.text += code.empty() ? msg : code + ": " + msg;
        if (!fields.empty()) out.text += " (fields: " + fields + ")";
    }
    return out;
}
SfErrors sf_errors(const std::string& body) {
    try {
        json::Value v = json::parse(body);
        SfErrors e = sf_errors(&v);
        if (!e.text.empty()) return e;
    } catch (const std::exception&) {
    }
    SfErrors raw;
    raw.text = body.size() > 300 ? body.substr(0, 300) + "…" : body;
    return raw;
}

struct PkeyFree {
    void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
struct MdCtxFree {
    void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
};
struct BioFree {
    void operator()(BIO* b) const { BIO_free(b); }
};

// Error codes (per record or for the whole call) that another try can cure.
bool retryable_code(const std::string& code) {
    return code == "REQUEST_LIMIT_EXCEEDED" || code == "UNABLE_TO_LOCK_ROW" ||
           code == "SERVER_UNAVAILABLE" || code == "ALL_OR_NONE_OPERATION_ROLLED_BACK";
}

}  // namespace

class SalesforcePush {
  public:
    static constexpr const char* name = "salesforce-push";
    static constexpr const char* version = "1.0.0";
    static constexpr const char* description =
        "upserts enriched rows into a Salesforce object by external id";
    static constexpr const char* events[] = {"enrichment.completed"};
    static constexpr uint32_t max_batch_size = 200;

    // The config it takes (ABI 1.1): the host checks an entry's config against
    // this before the constructor runs, fills in the defaults and hands the
    // durations over as integer milliseconds (declared duration_ms: a bare
    // number was milliseconds and stays so). The nested auth and mapping,
    // which the host does not look into, are checked here, below.
    static constexpr clayhook::ConfigKey config[] = {
        clayhook::config::required(clayhook::ConfigType::string, "object",
                                   "The sObject API name (Account, Lead, Company__c)."),
        clayhook::config::required(clayhook::ConfigType::string, "external_id_field",
                                   "The External ID field the upsert matches on; it must be "
                                   "in mapping, and an event without it fails."),
        clayhook::config::required(clayhook::ConfigType::object, "mapping",
                                   "Salesforce field ← event path. See [Mapping](#mapping)."),
        clayhook::config::required(clayhook::ConfigType::object, "auth",
                                   "Exactly one of client_credentials or jwt_bearer. See "
                                   "[Authentication](#authentication)."),
        clayhook::config::optional(clayhook::ConfigType::string, "login_url",
                                   "https://login.salesforce.com",
                                   "Base URL of the token endpoint ({login_url}/services/oauth2/"
                                   "token): test.salesforce.com for a sandbox, or your My Domain."),
        clayhook::config::optional(clayhook::ConfigType::string, "instance_url", nullptr,
                                   "Base URL of the REST API, used only when the token answer "
                                   "has no instance_url."),
        clayhook::config::optional(clayhook::ConfigType::string, "api_version", "v60.0",
                                   "The REST API version in the paths, written vNN.N."),
        clayhook::config::optional(clayhook::ConfigType::duration_ms, "timeout_ms", "30s",
                                   "Connect, send and read timeout per HTTP call, 1ms to 10m."),
        clayhook::config::optional(clayhook::ConfigType::duration_ms, "limit_retry_ms", "1m",
                                   "Wait before a retry after REQUEST_LIMIT_EXCEEDED or a 429 "
                                   "without Retry-After, 0 to 1d (0: the host's backoff)."),
        clayhook::config::optional(clayhook::ConfigType::string, "ca_file", nullptr,
                                   "A PEM file of CA certificates added to the system's CAs."),
    };

    SalesforcePush(clayhook::Host& host, const json::Value& cfg) : host_(host) {
        // Unknown keys the host has refused already, against `config` above.
        object_ = cfg.get_string("object", "");
        if (!is_identifier(object_))
            throw std::runtime_error(
                "config: 'object' is required: an sObject API name such as Account");
        ext_field_ = cfg.get_string("external_id_field", "");
        if (!is_identifier(ext_field_))
            throw std::runtime_error(
                "config: 'external_id_field' is required: a field API name such as "
                "Clay_Row_Id__c");
        api_version_ = cfg.get_string("api_version", "v60.0");
        if (api_version_.size() < 4 || api_version_[0] != 'v' ||
            api_version_.find_first_not_of("0123456789.", 1) != std::string::npos ||
            api_version_.find('.') == std::string::npos)
            throw std::runtime_error("config: 'api_version' must look like v60.0");

        const json::Value* mapping = cfg.find("mapping");
        if (mapping == nullptr)
            throw std::runtime_error(
                "config: 'mapping' is required (Salesforce field: event path)");
        map_ = FieldMap::parse(*mapping);
        bool mapped = false;
        for (const auto& r : map_.rules())
            if (r.field == ext_field_) mapped = true;
        if (!mapped)
            throw std::runtime_error("config: external_id_field '" + ext_field_ +
                                     "' must be mapped in 'mapping' (it is always required)");

        login_url_ = cfg.get_string("login_url", "https://login.salesforce.com");
        while (!login_url_.empty() && login_url_.back() == '/')
            login_url_.pop_back();
        login_ = endpoint(login_url_, "config: 'login_url'");
        if (std::string iu = cfg.get_string("instance_url", ""); !iu.empty())
            configured_instance_ = endpoint(iu, "config: 'instance_url'");

        using std::chrono::milliseconds;
        const milliseconds timeout = units::duration_ms_setting(
            cfg, "timeout_ms", milliseconds(30'000), milliseconds(1), milliseconds(600'000));
        limit_retry_ms_ = units::duration_ms_setting(cfg, "limit_retry_ms", milliseconds(60'000),
                                                     milliseconds(0), milliseconds(86'400'000))
                              .count();

        read_auth(cfg.find("auth"));

        // Certificates and host names are always verified; ca_file (PEM) is
        // added to the system's CAs (a private CA, a test's).
        http::ClientOptions o;
        o.connect_timeout = timeout;
        o.read_timeout = timeout;
        try {
            client_ = std::make_unique<http::Client>(cfg.get_string("ca_file", ""), o);
        } catch (const std::invalid_argument& e) {
            throw std::runtime_error(std::string("config: 'ca_file': ") + e.what());
        }

        host_.info("upserting " + object_ + " by " + ext_field_ + " (" + api_version_ + "), auth " +
                   (jwt_ ? "jwt_bearer" : "client_credentials") + " at " + login_url_);
    }

    Result handle(const clayhook::Event& e) {
        Result r;
        handle_batch(std::span<const clayhook::Event>(&e, 1), std::span<Result>(&r, 1));
        return r;
    }

    void handle_batch(std::span<const clayhook::Event> batch, std::span<Result> results) {
        // Map every event first: what cannot be mapped fails without a call.
        std::vector<Pending> todo;
        for (size_t i = 0; i < batch.size(); ++i) {
            std::optional<Pending> p = map_event(batch[i], results[i]);
            if (p) {
                p->index = i;
                todo.push_back(std::move(*p));
            }
        }
        // Salesforce refuses one external id twice in one request: the k-th
        // record of each id goes in round k, rounds one after the other.
        std::vector<std::vector<Pending*>> rounds;
        std::map<std::string, size_t> seen;
        for (auto& p : todo) {
            size_t k = seen[p.ext_value]++;
            if (rounds.size() <= k) rounds.emplace_back();
            rounds[k].push_back(&p);
        }
        for (auto& round : rounds) {
            if (round.size() == 1)
                results[round[0]->index] = upsert_one(*round[0]);
            else
                upsert_many(round, results);
        }
    }

  private:
    struct Pending {
        size_t index = 0;
        std::string ext_value;
        json::Value fields;  // the mapped fields, the external id among them
    };

    struct Token {
        std::string access;
        Endpoint instance;
    };
    // A token, or why there is none: `refused` (credentials: fail), else retry.
    struct TokenResult {
        std::optional<Token> token;
        bool refused = false;
        std::string why;
    };

    // ---- config --------------------------------------------------------

    void read_auth(const json::Value* auth) {
        const std::string hint =
            "config: 'auth' must be {client_credentials: {client_id, client_secret}} or "
            "{jwt_bearer: {client_id, username, private_key_file, audience}}";
        if (auth == nullptr || !auth->is_object() || auth->size() != 1)
            throw std::runtime_error(hint);
        const std::string& mode = auth->members().front().first;
        const json::Value& spec = auth->members().front().second;
        if (!spec.is_object()) throw std::runtime_error(hint);
        auto allow = [&](std::initializer_list<const char*> keys) {
            for (const auto& [k, v] : spec.members()) {
                if (std::find_if(keys.begin(), keys.end(), [&](const char* x) { return k == x; }) ==
                    keys.end())
                    throw std::runtime_error("config: auth." + mode + ": unknown key '" + k + "'");
                if (!v.is_string())
                    throw std::runtime_error("config: auth." + mode + "." + k + ": a string");
            }
        };
        auto need = [&](const char* key) {
            std::string v = spec.get_string(key, "");
            if (v.empty())
                throw std::runtime_error("config: auth." + mode + "." + key + " is required");
            return v;
        };
        client_id_ = need("client_id");
        if (mode == "client_credentials") {
            allow({"client_id", "client_secret"});
            client_secret_ = need("client_secret");
        } else if (mode == "jwt_bearer") {
            allow({"client_id", "username", "private_key_file", "audience"});
            jwt_ = true;
            username_ = need("username");
            audience_ = spec.get_string("audience", login_url_);
            std::string path = need("private_key_file");
            std::unique_ptr<BIO, BioFree> bio(BIO_new_file(path.c_str(), "r"));
            if (!bio)
                throw std::runtime_error("config: auth.jwt_bearer.private_key_file: cannot open " +
                                         path + ": " + openssl_error());
            // No passphrase: OpenSSL's default would ask for one on the terminal.
            pem_password_cb* no_passphrase = [](char*, int, int, void*) { return 0; };
            key_.reset(PEM_read_bio_PrivateKey(bio.get(), nullptr, no_passphrase, nullptr));
            if (!key_)
                throw std::runtime_error(
                    "config: auth.jwt_bearer.private_key_file: " + path +
                    " holds no unencrypted PEM private key: " + openssl_error());
            if (EVP_PKEY_get_base_id(key_.get()) != EVP_PKEY_RSA)
                throw std::runtime_error("config: auth.jwt_bearer.private_key_file: " + path +
                                         " is not an RSA key (RS256 needs one)");
        } else {
            throw std::runtime_error(hint);
        }
    }

    // ---- mapping ---------------------------------------------------------

    std::optional<Pending> map_event(const clayhook::Event& e, Result& out) {
        json::Value body;
        try {
            body = e.json();
        } catch (const json::ParseError& err) {
            out = failed(std::string("the body is not JSON: ") + err.what());
            return std::nullopt;
        }
        FieldMap::Applied a = map_.apply(body);
        std::string missing = a.missing;
        const json::Value* ext = a.get(ext_field_);
        if (missing.empty() && ext == nullptr) missing = ext_field_;
        if (!missing.empty()) {
            std::string from;
            for (const auto& r : map_.rules())
                if (r.field == missing)
                    for (const auto& p : r.from)
                        from += (from.empty() ? "" : ", ") + p;
            out = failed("required field " + missing + " is missing or empty (from " + from + ")");
            return std::nullopt;
        }
        Pending p;
        if (ext->is_string()) {
            p.ext_value = ext->as_string();
        } else if (ext->is_number()) {
            p.ext_value = json::dump(*ext);
        } else {
            out = failed("external id " + ext_field_ + " must be a string or a number, found " +
                         json::Value::kind_name(ext->kind()));
            return std::nullopt;
        }
        p.fields = json::Value::object();
        for (auto& [field, value] : a.values)
            p.fields.set(field, std::move(value));
        return p;
    }

    // ---- results ---------------------------------------------------------

    Result done(bool created) {
        host_.counter_add("records_total", 1, created ? "result=created" : "result=updated");
        return Result::done();
    }
    Result failed(std::string why) {
        host_.counter_add("records_total", 1, "result=failed");
        return Result::fail(std::move(why));
    }
    Result retried(std::string why, int64_t after_ms = 0) {
        host_.counter_add("records_total", 1, "result=retried");
        return Result::retry(std::move(why), std::chrono::milliseconds(after_ms));
    }

    // What a whole call's non-success answer means for each of its records.
    Result classify_call(const Answer& a) {
        if (a.status == 0 && !a.retryable)
            return failed("Salesforce's answer is unusable: " + a.error);
        if (a.status == 0) return retried("Salesforce unreachable: " + a.error);
        SfErrors err = sf_errors(a.body);
        std::string said = "Salesforce answered " + std::to_string(a.status) +
                           (err.text.empty() ? std::string() : ": " + err.text);
        // A Retry-After (429, 503) says how long; else limit_retry_ms for a
        // limit, the host's backoff for the rest.
        auto after = [&](int64_t otherwise) {
            return a.retry_after
                       ? std::chrono::duration_cast<std::chrono::milliseconds>(*a.retry_after)
                             .count()
                       : otherwise;
        };
        if (a.status == 401) return failed(said + " with a freshly issued token");
        if (err.code == "REQUEST_LIMIT_EXCEEDED") return retried(said, after(limit_retry_ms_));
        if (a.status == 429) return retried(said, after(limit_retry_ms_));
        if (a.status >= 500 || retryable_code(err.code)) return retried(said, after(0));
        if (a.status == 300)
            return failed("Salesforce answered 300: the external id matches several records");
        return failed(said);
    }

    Result upsert_one(const Pending& p) {
        json::Value fields = json::Value::object();
        for (const auto& [f, v] : p.fields.members())
            if (f != ext_field_) fields.set(f, v);
        std::string path = "/sobjects/" + object_ + "/" + ext_field_ + "/" + pct(p.ext_value);
        Called c = call("PATCH", path, json::dump(fields));
        if (!c.why.empty()) return c.refused ? failed(c.why) : retried(c.why);
        const Answer& a = c.answer;
        if (a.status == 201) return done(true);
        if (a.status == 200 || a.status == 204) {
            bool created = false;
            try {
                if (!a.body.empty()) created = json::parse(a.body).get_bool("created", false);
            } catch (const std::exception&) {
            }
            return done(created);
        }
        if (a.status == 400) {
            SfErrors err = sf_errors(a.body);
            if (!retryable_code(err.code))
                return failed("Salesforce refused the record: " + err.text);
        }
        return classify_call(a);
    }

    void upsert_many(const std::vector<Pending*>& round, std::span<Result> results) {
        json::Value records = json::Value::array();
        for (const Pending* p : round) {
            json::Value r = json::Value::object();
            r.set("attributes", json::Value::object().set("type", object_));
            for (const auto& [f, v] : p->fields.members())
                r.set(f, v);
            records.push_back(std::move(r));
        }
        json::Value doc = json::Value::object();
        doc.set("allOrNone", false);
        doc.set("records", std::move(records));
        std::string path = "/composite/sobjects/" + object_ + "/" + ext_field_;
        Called c = call("PATCH", path, json::dump(doc));
        const Answer& a = c.answer;
        auto all = [&](auto make) {
            for (const Pending* p : round)
                results[p->index] = make();
        };
        if (!c.why.empty()) {
            all([&] { return c.refused ? failed(c.why) : retried(c.why); });
            return;
        }
        if (a.status != 200) {
            all([&] { return classify_call(a); });
            return;
        }
        json::Value list;
        try {
            list = json::parse(a.body);
        } catch (const std::exception&) {
        }
        if (!list.is_array() || list.size() != round.size()) {
            std::string why2 = "Salesforce answered " + std::to_string(round.size()) +
                               " records with " +
                               (list.is_array() ? std::to_string(list.size()) + " results"
                                                : std::string("no result list"));
            all([&] { return retried(why2); });
            return;
        }
        for (size_t k = 0; k < round.size(); ++k) {
            const json::Value& r = list[k];
            Result& out = results[round[k]->index];
            if (r.get_bool("success", false)) {
                out = done(r.get_bool("created", false));
                continue;
            }
            SfErrors err = sf_errors(r.find("errors"));
            std::string why2 = "Salesforce refused the record: " +
                               (err.text.empty() ? std::string("no reason given") : err.text);
            out = retryable_code(err.code)
                      ? retried(why2, err.code == "REQUEST_LIMIT_EXCEEDED" ? limit_retry_ms_ : 0)
                      : failed(why2);
        }
    }

    // ---- the API call, with the token ------------------------------------

    struct Called {
        Answer answer;
        std::string why;  // no token: why not
        bool refused = false;
    };

    // Sends a data API request; on 401 fetches a new token once and replays.
    Called call(const std::string& method, const std::string& path, const std::string& body) {
        for (int round = 0;; ++round) {
            TokenResult t = token();
            if (!t.token) return {Answer{}, t.why, t.refused};
            Answer a = send(method, t.token->instance, "/services/data/" + api_version_ + path,
                            "application/json", body, t.token->access);
            if (a.status == 401 && round == 0) {
                host_.info("Salesforce answered 401 (" + sf_errors(a.body).code +
                           "): fetching a new access token");
                invalidate(t.token->access);
                continue;
            }
            return {std::move(a), {}, false};
        }
    }

    TokenResult token() {
        std::lock_guard lock(token_mu_);  // one fetch at a time; the others wait for it
        if (token_) return {token_, false, {}};
        TokenResult r = fetch_token();
        if (r.token) token_ = r.token;
        return r;
    }

    void invalidate(const std::string& access) {
        std::lock_guard lock(token_mu_);
        if (token_ && token_->access == access) token_.reset();
    }

    TokenResult fetch_token() {
        std::string form;
        if (jwt_) {
            std::string assertion;
            try {
                assertion = jwt();
            } catch (const std::exception& e) {
                host_.counter_add("token_fetches_total", 1, "result=refused");
                return {std::nullopt, true, std::string("cannot sign the JWT: ") + e.what()};
            }
            form = "grant_type=" + pct("urn:ietf:params:oauth:grant-type:jwt-bearer") +
                   "&assertion=" + pct(assertion);
        } else {
            form = "grant_type=client_credentials&client_id=" + pct(client_id_) +
                   "&client_secret=" + pct(client_secret_);
        }
        Answer a = send("POST", login_, "/services/oauth2/token",
                        "application/x-www-form-urlencoded", form, {});
        if (a.status == 0) {
            host_.counter_add("token_fetches_total", 1, "result=error");
            if (!a.retryable)
                return {std::nullopt, true,
                        "the Salesforce token endpoint's answer is unusable: " + a.error};
            return {std::nullopt, false, "Salesforce token endpoint unreachable: " + a.error};
        }
        json::Value doc;
        try {
            doc = json::parse(a.body);
        } catch (const std::exception&) {
        }
        if (a.status == 200 && doc.is_object() && !doc.get_string("access_token", "").empty()) {
            Token t;
            t.access = doc.get_string("access_token", "");
            std::string iu = doc.get_string("instance_url", "");
            try {
                if (!iu.empty())
                    t.instance = endpoint(iu, "the token's instance_url");
                else if (configured_instance_)
                    t.instance = *configured_instance_;
                else
                    throw std::runtime_error(
                        "the token answer has no instance_url and 'instance_url' is not set");
            } catch (const std::exception& e) {
                host_.counter_add("token_fetches_total", 1, "result=refused");
                host_.error(std::string("Salesforce authentication unusable: ") + e.what());
                return {std::nullopt, true, e.what()};
            }
            host_.counter_add("token_fetches_total", 1, "result=ok");
            host_.debug("got a Salesforce access token for " + t.instance.url());
            return {t, false, {}};
        }
        std::string error = doc.is_object() ? doc.get_string("error", "") : "";
        std::string desc = doc.is_object() ? doc.get_string("error_description", "") : "";
        std::string said = "Salesforce token endpoint answered " + std::to_string(a.status) +
                           (error.empty() ? "" : " " + error) + (desc.empty() ? "" : ": " + desc);
        if (a.status >= 500 || a.status == 429) {
            host_.counter_add("token_fetches_total", 1, "result=error");
            return {std::nullopt, false, said};
        }
        // invalid_client, invalid_grant, …: the credentials are wrong, and
        // asking again will not change that. Loud, and no retry.
        host_.counter_add("token_fetches_total", 1, "result=refused");
        host_.error("Salesforce authentication failed (" +
                    std::string(jwt_ ? "jwt_bearer" : "client_credentials") + "): " + said);
        return {std::nullopt, true, "authentication failed: " + said};
    }

    // An RS256 JWT: iss = client id, sub = username, aud, exp = now + 3 min.
    std::string jwt() const {
        int64_t now = std::chrono::duration_cast<std::chrono::seconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count();
        json::Value claims = json::Value::object();
        claims.set("iss", client_id_);
        claims.set("sub", username_);
        claims.set("aud", audience_);
        claims.set("exp", now + 180);
        std::string input =
            base64url(R"({"alg":"RS256","typ":"JWT"})") + "." + base64url(json::dump(claims));
        std::unique_ptr<EVP_MD_CTX, MdCtxFree> ctx(EVP_MD_CTX_new());
        if (!ctx) throw std::runtime_error(openssl_error());
        if (EVP_DigestSignInit(ctx.get(), nullptr, EVP_sha256(), nullptr, key_.get()) != 1)
            throw std::runtime_error(openssl_error());
        size_t len = 0;
        const auto* data = reinterpret_cast<const unsigned char*>(input.data());
        if (EVP_DigestSign(ctx.get(), nullptr, &len, data, input.size()) != 1)
            throw std::runtime_error(openssl_error());
        std::string sig(len, '\0');
        if (EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(sig.data()), &len, data,
                           input.size()) != 1)
            throw std::runtime_error(openssl_error());
        sig.resize(len);
        return input + "." + base64url(sig);
    }

    // ---- HTTP ------------------------------------------------------------

    Answer send(const std::string& method, const Endpoint& ep, const std::string& path,
                const std::string& content_type, const std::string& body,
                const std::string& bearer) {
        Answer a;
        http::Request req{method, path, {{"Accept", "application/json"}}, body};
        if (!bearer.empty()) req.headers.emplace_back("Authorization", "Bearer " + bearer);
        req.headers.emplace_back("Content-Type", content_type);
        try {
            http::Response r = client_->send(ep, req);
            a.status = r.status;
            a.body = std::move(r.body);
            a.retry_after = r.retry_after;
            if (const std::string* h = r.header("Sforce-Limit-Info")) a.limit_info = *h;
        } catch (const http::Error& e) {
            a.status = 0;
            a.error = e.what();
            a.retryable = e.retryable();
        }
        export_limits(a.limit_info);
        return a;
    }

    // "api-usage=10018/100000" → gauges api_usage and api_limit.
    void export_limits(const std::string& info) {
        auto at = info.find("api-usage=");
        if (at == std::string::npos) return;
        try {
            std::string v = info.substr(at + 10);
            size_t slash = v.find('/');
            if (slash == std::string::npos) return;
            double used = std::stod(v.substr(0, slash));
            double limit = std::stod(v.substr(slash + 1));
            host_.gauge_set("api_usage", used);
            host_.gauge_set("api_limit", limit);
        } catch (const std::exception&) {
            // a header we do not understand is not worth failing a record for
        }
    }

    clayhook::Host& host_;
    std::string object_, ext_field_, api_version_;
    FieldMap map_;
    std::string login_url_;
    Endpoint login_;
    std::optional<Endpoint> configured_instance_;
    int64_t limit_retry_ms_ = 60'000;
    bool jwt_ = false;
    std::string client_id_, client_secret_, username_, audience_;
    std::unique_ptr<EVP_PKEY, PkeyFree> key_;
    std::unique_ptr<http::Client> client_;
    std::mutex token_mu_;
    std::optional<Token> token_;
};

CLAYHOOK_PLUGIN(SalesforcePush)
