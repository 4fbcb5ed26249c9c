#include "fakes/FakeSalesforce.h"

#include "support/FakeServer.h"

#include <Poco/Net/HTTPRequestHandler.h>
#include <Poco/Net/HTTPRequestHandlerFactory.h>
#include <Poco/Net/HTTPServer.h>
#include <Poco/Net/HTTPServerParams.h>
#include <Poco/Net/HTTPServerRequest.h>
#include <Poco/Net/HTTPServerResponse.h>
#include <Poco/Net/ServerSocket.h>
#include <Poco/Net/SocketAddress.h>
#include <Poco/StreamCopier.h>
#include <Poco/ThreadPool.h>
#include <Poco/URI.h>

// OpenSSL comes with Poco::NetSSL (Poco::Crypto → OpenSSL::Crypto), so the
// fake checks a JWT bearer assertion's RS256 signature for real.
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <algorithm>
#include <random>
#include <set>

namespace clayhook::test {

namespace json = clayhook::json;
using Poco::Net::HTTPResponse;
using Poco::Net::HTTPServerRequest;
using Poco::Net::HTTPServerResponse;

namespace {

std::string random_chars(size_t n) {
    static thread_local std::mt19937_64 rng{std::random_device{}()};
    static constexpr char kChars[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    std::string out;
    for (size_t i = 0; i < n; ++i)
        out += kChars[rng() % 62];
    return out;
}

int64_t unix_seconds() {
    return std::chrono::duration_cast<std::chrono::seconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

bool base64url_decode(std::string_view in, std::string& out) {
    out.clear();
    uint32_t acc = 0;
    int bits = 0;
    for (char c : in) {
        int v = c >= 'A' && c <= 'Z'   ? c - 'A'
                : c >= 'a' && c <= 'z' ? c - 'a' + 26
                : c >= '0' && c <= '9' ? c - '0' + 52
                : c == '-'             ? 62
                : c == '_'             ? 63
                                       : -1;
        if (v < 0) return false;
        acc = (acc << 6) | static_cast<uint32_t>(v);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out.push_back(static_cast<char>((acc >> bits) & 0xFF));
        }
    }
    return true;
}

bool rs256_verify(const std::string& pem_file, const std::string& input,
                  const std::string& signature) {
    BIO* bio = BIO_new_file(pem_file.c_str(), "r");
    if (bio == nullptr) return false;
    EVP_PKEY* key = PEM_read_bio_PUBKEY(bio, nullptr, nullptr, nullptr);
    BIO_free(bio);
    if (key == nullptr) return false;
    EVP_MD_CTX* ctx = EVP_MD_CTX_new();
    bool ok =
        ctx != nullptr && EVP_DigestVerifyInit(ctx, nullptr, EVP_sha256(), nullptr, key) == 1 &&
        EVP_DigestVerify(ctx, reinterpret_cast<const unsigned char*>(signature.data()),
                         signature.size(), reinterpret_cast<const unsigned char*>(input.data()),
                         input.size()) == 1;
    EVP_MD_CTX_free(ctx);
    EVP_PKEY_free(key);
    return ok;
}

std::map<std::string, std::string> parse_form(const std::string& body) {
    std::map<std::string, std::string> out;
    size_t i = 0;
    while (i <= body.size()) {
        size_t amp = body.find('&', i);
        if (amp == std::string::npos) amp = body.size();
        std::string pair = body.substr(i, amp - i);
        std::replace(pair.begin(), pair.end(), '+', ' ');
        size_t eq = pair.find('=');
        std::string k, v;
        Poco::URI::decode(pair.substr(0, eq), k);
        if (eq != std::string::npos) Poco::URI::decode(pair.substr(eq + 1), v);
        if (!k.empty()) out[k] = v;
        i = amp + 1;
    }
    return out;
}

json::Value error_list(const std::string& code, const std::string& message,
                       const std::vector<std::string>& fields = {}, bool status_code = false) {
    json::Value e = json::Value::object();
    e.set("message", message);
    e.set(status_code ? "statusCode" : "errorCode", code);
    json::Value f = json::Value::array();
    for (const auto& x : fields)
        f.push_back(x);
    e.set("fields", std::move(f));
    json::Value list = json::Value::array();
    list.push_back(std::move(e));
    return list;
}

std::string key_text(const json::Value& v) {
    return v.is_string() ? v.as_string() : json::dump(v);
}

}  // namespace

struct FakeSalesforce::State {
    Options options;
    std::string base_url;
    mutable std::mutex mu;
    std::vector<Request> requests;
    std::vector<Record> records;
    std::vector<std::string> issued;
    std::set<std::string> valid;
    struct Failure {
        int status;
        std::string code, message;
    };
    std::deque<Failure> failures;
    struct Rejection {
        std::string code, message;
        std::vector<std::string> fields;
    };
    std::map<std::string, Rejection> rejections;
    bool updates_204 = false;
    int64_t used = 0;
    int64_t limit = 100000;

    void answer(HTTPServerResponse& resp, int status, const std::string& body) {
        resp.setStatus(static_cast<HTTPResponse::HTTPStatus>(status));
        if (body.empty()) {
            resp.setContentLength(0);
            resp.send();
            return;
        }
        resp.setContentType("application/json;charset=UTF-8");
        resp.sendBuffer(body.data(), body.size());
    }
    void answer(HTTPServerResponse& resp, int status, const json::Value& body) {
        answer(resp, status, json::dump(body));
    }

    void token_error(HTTPServerResponse& resp, const std::string& error,
                     const std::string& description) {
        json::Value e = json::Value::object();
        e.set("error", error);
        e.set("error_description", description);
        answer(resp, 400, e);
    }

    void issue(HTTPServerResponse& resp) {
        std::string token = "00D" + random_chars(12) + "!" + random_chars(40);
        issued.push_back(token);
        valid.insert(token);
        json::Value t = json::Value::object();
        t.set("access_token", token);
        t.set("instance_url", base_url);
        t.set("id", base_url + "/id/00D000000000001EAA/005000000000001AAA");
        t.set("token_type", "Bearer");
        t.set("issued_at", std::to_string(unix_seconds() * 1000));
        t.set("signature", random_chars(43) + "=");
        answer(resp, 200, t);
    }

    void token(const std::string& body, HTTPServerResponse& resp) {
        auto form = parse_form(body);
        const std::string grant = form["grant_type"];
        if (grant == "client_credentials") {
            if (form["client_id"] != options.client_id ||
                form["client_secret"] != options.client_secret)
                return token_error(resp, "invalid_client", "invalid client credentials");
            return issue(resp);
        }
        if (grant == "urn:ietf:params:oauth:grant-type:jwt-bearer") {
            const std::string& jwt = form["assertion"];
            size_t d1 = jwt.find('.');
            size_t d2 = d1 == std::string::npos ? d1 : jwt.find('.', d1 + 1);
            std::string header, claims_text, sig;
            if (d2 == std::string::npos || !base64url_decode(jwt.substr(0, d1), header) ||
                !base64url_decode(jwt.substr(d1 + 1, d2 - d1 - 1), claims_text) ||
                !base64url_decode(jwt.substr(d2 + 1), sig))
                return token_error(resp, "invalid_grant", "invalid assertion");
            json::Value h, c;
            try {
                h = json::parse(header);
                c = json::parse(claims_text);
            } catch (const std::exception&) {
                return token_error(resp, "invalid_grant", "invalid assertion");
            }
            if (!h.is_object() || h.get_string("alg", "") != "RS256" || !c.is_object())
                return token_error(resp, "invalid_grant", "invalid assertion");
            if (c.get_string("iss", "") != options.client_id)
                return token_error(resp, "invalid_client_id", "client identifier invalid");
            std::string aud = options.jwt_audience.empty() ? base_url : options.jwt_audience;
            if (c.get_string("aud", "") != aud)
                return token_error(resp, "invalid_grant", "audience is invalid");
            if (c.get_string("sub", "") != options.username)
                return token_error(resp, "invalid_grant", "user hasn't approved this consumer");
            const json::Value* exp = c.find("exp");
            int64_t now = unix_seconds();
            if (exp == nullptr || !exp->is_integer() || exp->as_int64() < now ||
                exp->as_int64() > now + 300)
                return token_error(resp, "invalid_grant", "expired authorization code");
            if (!options.jwt_public_key_file.empty() &&
                !rs256_verify(options.jwt_public_key_file, jwt.substr(0, d2), sig))
                return token_error(resp, "invalid_grant", "invalid assertion signature");
            return issue(resp);
        }
        token_error(resp, "unsupported_grant_type", "grant type not supported");
    }

    Record* find(const std::string& object, const std::string& field, const std::string& value) {
        for (auto& r : records) {
            if (r.object != object) continue;
            const json::Value* v = r.fields.find(field);
            if (v != nullptr && key_text(*v) == value) return &r;
        }
        return nullptr;
    }

    // Creates or updates; returns the record and whether it was created.
    std::pair<Record*, bool> upsert(const std::string& object, const std::string& field,
                                    const json::Value& ext, const json::Value& fields) {
        Record* r = find(object, field, key_text(ext));
        bool created = r == nullptr;
        if (created) {
            records.push_back({"001" + random_chars(15), object, json::Value::object(), 0});
            r = &records.back();
            r->fields.set(field, ext);
        }
        for (const auto& [k, v] : fields.members())
            if (k != "attributes") r->fields.set(k, v);
        ++r->writes;
        return {r, created};
    }

    void data(const std::string& method, const std::vector<std::string>& seg,
              const std::string& body, HTTPServerResponse& resp) {
        // seg: services data vXX.X sobjects Object Field value
        //   or services data vXX.X composite sobjects Object Field
        if (seg.size() == 7 && seg[3] == "sobjects") {
            if (method != "PATCH")
                return answer(resp, 405,
                              error_list("METHOD_NOT_ALLOWED", "HTTP Method not allowed"));
            json::Value doc;
            try {
                doc = json::parse(body);
            } catch (const std::exception&) {
            }
            if (!doc.is_object())
                return answer(resp, 400, error_list("JSON_PARSER_ERROR", "not a JSON object"));
            const std::string& value = seg[6];
            if (auto it = rejections.find(value); it != rejections.end())
                return answer(resp, 400,
                              error_list(it->second.code, it->second.message, it->second.fields));
            auto [r, created] = upsert(seg[4], seg[5], json::Value(value), doc);
            if (!created && updates_204) return answer(resp, 204, std::string());
            json::Value ok = json::Value::object();
            ok.set("id", r->id);
            ok.set("success", true);
            ok.set("errors", json::Value::array());
            ok.set("created", created);
            return answer(resp, created ? 201 : 200, ok);
        }
        if (seg.size() == 7 && seg[3] == "composite" && seg[4] == "sobjects") {
            if (method != "PATCH")
                return answer(resp, 405,
                              error_list("METHOD_NOT_ALLOWED", "HTTP Method not allowed"));
            const std::string& object = seg[5];
            const std::string& field = seg[6];
            json::Value doc;
            try {
                doc = json::parse(body);
            } catch (const std::exception&) {
            }
            const json::Value* recs = doc.is_object() ? doc.find("records") : nullptr;
            if (recs == nullptr || !recs->is_array())
                return answer(resp, 400, error_list("JSON_PARSER_ERROR", "no records list"));
            if (recs->size() > 200)
                return answer(resp, 400,
                              error_list("EXCEEDED_ID_LIMIT",
                                         "record limit reached. cannot "
                                         "submit more than 200 records "
                                         "into this call"));
            std::map<std::string, int> count;
            for (const auto& r : recs->items())
                if (const json::Value* v = r.is_object() ? r.find(field) : nullptr)
                    ++count[key_text(*v)];
            json::Value results = json::Value::array();
            for (const auto& r : recs->items()) {
                json::Value out = json::Value::object();
                const json::Value* type = r.is_object() ? r.at_path("attributes.type") : nullptr;
                const json::Value* v = r.is_object() ? r.find(field) : nullptr;
                auto fail = [&](const std::string& code, const std::string& message,
                                const std::vector<std::string>& fields) {
                    out.set("success", false);
                    json::Value errs = error_list(code, message, fields, true);
                    out.set("errors", std::move(errs));
                };
                if (type == nullptr || !type->is_string() || type->as_string() != object) {
                    fail("INVALID_TYPE", "attributes.type must be " + object, {});
                } else if (v == nullptr || v->is_null()) {
                    fail("MISSING_ARGUMENT", field + " not specified", {field});
                } else if (count[key_text(*v)] > 1) {
                    fail("DUPLICATE_VALUE", "Duplicate external id specified: " + key_text(*v),
                         {field});
                } else if (auto it = rejections.find(key_text(*v)); it != rejections.end()) {
                    fail(it->second.code, it->second.message, it->second.fields);
                } else {
                    auto [rec, created] = upsert(object, field, *v, r);
                    out.set("id", rec->id);
                    out.set("success", true);
                    out.set("errors", json::Value::array());
                    out.set("created", created);
                }
                results.push_back(std::move(out));
            }
            return answer(resp, 200, results);
        }
        answer(resp, 404, error_list("NOT_FOUND", "The requested resource does not exist"));
    }

    void handle(HTTPServerRequest& req, HTTPServerResponse& resp) {
        std::string body;
        Poco::StreamCopier::copyToString(req.stream(), body);
        const std::string auth = req.get("Authorization", "");
        const std::string method = req.getMethod();
        const std::string path = req.getURI();

        std::lock_guard lock(mu);
        requests.push_back(
            {method, path, auth, req.getContentType(), body, std::chrono::steady_clock::now()});

        std::vector<std::string> seg;
        std::string p = path.substr(0, path.find_first_of("?#"));
        for (size_t i = 1; i <= p.size();) {
            size_t j = p.find('/', i);
            if (j == std::string::npos) j = p.size();
            std::string decoded;
            Poco::URI::decode(p.substr(i, j - i), decoded);
            seg.push_back(decoded);
            i = j + 1;
        }

        if (seg.size() == 3 && seg[0] == "services" && seg[1] == "oauth2" && seg[2] == "token") {
            if (method != "POST") return answer(resp, 405, std::string());
            return token(body, resp);
        }
        if (seg.size() >= 3 && seg[0] == "services" && seg[1] == "data") {
            ++used;
            resp.set("Sforce-Limit-Info",
                     "api-usage=" + std::to_string(used) + "/" + std::to_string(limit));
            std::string token = auth.rfind("Bearer ", 0) == 0 ? auth.substr(7) : "";
            if (!valid.count(token))
                return answer(resp, 401,
                              error_list("INVALID_SESSION_ID", "Session expired or invalid"));
            if (!failures.empty()) {
                Failure f = failures.front();
                failures.pop_front();
                return answer(resp, f.status, error_list(f.code, f.message));
            }
            return data(method, seg, body, resp);
        }
        answer(resp, 404, error_list("NOT_FOUND", "The requested resource does not exist"));
    }
};

FakeSalesforce::FakeSalesforce() : FakeSalesforce(Options{}) {}

FakeSalesforce::FakeSalesforce(Options options) : state_(std::make_shared<State>()) {
    state_->options = std::move(options);
    server_ = std::make_unique<FakeServer>(
        [s = state_](auto& req, auto& resp) { s->handle(req, resp); }, "", "", 8);
    port_ = server_->port();
    state_->base_url = base_url();
}

FakeSalesforce::~FakeSalesforce() {
    server_.reset();
}

std::string FakeSalesforce::base_url() const {
    return "http://127.0.0.1:" + std::to_string(port_);
}

void FakeSalesforce::expire_tokens() {
    std::lock_guard lock(state_->mu);
    state_->valid.clear();
}

void FakeSalesforce::fail_next(int count, int status, std::string code, std::string message) {
    std::lock_guard lock(state_->mu);
    for (int i = 0; i < count; ++i)
        state_->failures.push_back({status, code, message});
}

void FakeSalesforce::reject(std::string ext_value, std::string code, std::string message,
                            std::vector<std::string> fields) {
    std::lock_guard lock(state_->mu);
    state_->rejections[std::move(ext_value)] = {std::move(code), std::move(message),
                                                std::move(fields)};
}

void FakeSalesforce::answer_updates_with_204(bool on) {
    std::lock_guard lock(state_->mu);
    state_->updates_204 = on;
}

void FakeSalesforce::set_api_usage(int64_t used, int64_t limit) {
    std::lock_guard lock(state_->mu);
    state_->used = used;
    state_->limit = limit;
}

int64_t FakeSalesforce::api_used() const {
    std::lock_guard lock(state_->mu);
    return state_->used;
}

std::vector<FakeSalesforce::Request> FakeSalesforce::requests() const {
    std::lock_guard lock(state_->mu);
    return state_->requests;
}

size_t FakeSalesforce::token_requests() const {
    std::lock_guard lock(state_->mu);
    return static_cast<size_t>(
        std::count_if(state_->requests.begin(), state_->requests.end(),
                      [](const Request& r) { return r.path == "/services/oauth2/token"; }));
}

std::vector<FakeSalesforce::Request> FakeSalesforce::api_requests() const {
    std::lock_guard lock(state_->mu);
    std::vector<Request> out;
    for (const auto& r : state_->requests)
        if (r.path.rfind("/services/data/", 0) == 0) out.push_back(r);
    return out;
}

std::vector<FakeSalesforce::Record> FakeSalesforce::records() const {
    std::lock_guard lock(state_->mu);
    return state_->records;
}

std::vector<std::string> FakeSalesforce::issued_tokens() const {
    std::lock_guard lock(state_->mu);
    return state_->issued;
}

}  // namespace clayhook::test
