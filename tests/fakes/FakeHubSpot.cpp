#include "fakes/FakeHubSpot.h"

#include "support/FakeServer.h"

#include <clayhook/json.hpp>

#include <Poco/Net/Context.h>
#include <Poco/Net/HTTPRequestHandler.h>
#include <Poco/Net/HTTPRequestHandlerFactory.h>
#include <Poco/Net/HTTPServer.h>
#include <Poco/Net/HTTPServerParams.h>
#include <Poco/Net/HTTPServerRequest.h>
#include <Poco/Net/HTTPServerResponse.h>
#include <Poco/Net/SecureServerSocket.h>
#include <Poco/Net/ServerSocket.h>
#include <Poco/Net/SocketAddress.h>
#include <Poco/StreamCopier.h>
#include <Poco/ThreadPool.h>

#include <algorithm>
#include <cctype>
#include <ctime>
#include <random>

namespace clayhook::test {

namespace json = clayhook::json;
using Poco::Net::HTTPResponse;
using Poco::Net::HTTPServerRequest;
using Poco::Net::HTTPServerResponse;

namespace {

std::string now_iso() {
    auto now = std::chrono::system_clock::now();
    std::time_t t = std::chrono::system_clock::to_time_t(now);
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()) % 1000;
    std::tm tm{};
    ::gmtime_r(&t, &tm);
    char buf[40];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
    char out[48];
    std::snprintf(out, sizeof out, "%s.%03dZ", buf, static_cast<int>(ms.count()));
    return out;
}

std::string correlation_id() {
    static thread_local std::mt19937_64 rng{std::random_device{}()};
    static constexpr char kHex[] = "0123456789abcdef";
    std::string out;
    for (int i = 0; i < 36; ++i)
        out += (i == 8 || i == 13 || i == 18 || i == 23) ? '-' : kHex[rng() & 15];
    return out;
}

std::string lower(std::string s) {
    for (auto& c : s)
        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
}

// HubSpot's error body: {"status":"error","message","correlationId","category"}.
std::string error_body(const std::string& category, const std::string& message) {
    json::Value v = json::Value::object();
    v.set("status", "error");
    v.set("message", message);
    v.set("correlationId", correlation_id());
    v.set("category", category);
    return json::dump(v);
}

void answer(HTTPServerResponse& resp, int status, const std::string& body) {
    resp.setStatus(static_cast<HTTPResponse::HTTPStatus>(status));
    resp.set("X-HubSpot-RateLimit-Interval-Milliseconds", "10000");
    resp.set("X-HubSpot-RateLimit-Max", "100");
    resp.set("X-HubSpot-RateLimit-Remaining", "99");
    resp.set("X-HubSpot-RateLimit-Daily", "250000");
    resp.set("X-HubSpot-RateLimit-Daily-Remaining", "249999");
    resp.setContentType("application/json;charset=utf-8");
    resp.sendBuffer(body.data(), body.size());
}

}  // namespace

struct FakeHubSpot::State {
    std::string token;
    mutable std::mutex mu;
    std::vector<Request> requests;
    std::map<std::string, std::map<std::string, Record>> records;  // object → id → record
    std::map<std::string, std::string> rejected;                   // "object/id" → message
    std::map<std::string, std::string> batch_rejected;             // "object/id" → message
    std::vector<std::pair<std::string, std::string>> associations;
    int rate_limited = 0;
    std::string retry_after;
    int failing = 0;
    int fail_status = 500;
    long next_id = 101;

    static std::string id_key(const std::string& id_property, const std::string& id) {
        return id_property == "email" || id_property == "domain" ? lower(id) : id;
    }

    // Returns the status and the body.
    std::pair<int, std::string> upsert(const std::string& object, const std::string& body) {
        json::Value doc;
        try {
            doc = json::parse(body);
        } catch (const std::exception& e) {
            return {400, error_body("VALIDATION_ERROR",
                                    std::string("Invalid input JSON on line 1: ") + e.what())};
        }
        const json::Value* inputs = doc.is_object() ? doc.find("inputs") : nullptr;
        if (inputs == nullptr || !inputs->is_array())
            return {400,
                    error_body("VALIDATION_ERROR", "Invalid input JSON: 'inputs' is required")};
        if (inputs->size() == 0 || inputs->size() > 100)
            return {400, error_body("VALIDATION_ERROR",
                                    "Batch input must contain between 1 and 100 inputs, found " +
                                        std::to_string(inputs->size()))};
        const std::string unique = object == "contacts" ? "email" : "domain";
        // A whole-batch refusal first, as HubSpot does: an idProperty that is
        // not a unique property of the object, or the same id twice.
        std::vector<std::string> seen;
        for (const auto& in : inputs->items()) {
            std::string prop = in.get_string("idProperty", "");
            if (prop != unique)
                return {400, error_body("VALIDATION_ERROR", "Property '" + prop +
                                                                "' is not a unique identifier of " +
                                                                object)};
            std::string key = id_key(prop, in.get_string("id", ""));
            if (std::find(seen.begin(), seen.end(), key) != seen.end())
                return {400, error_body("VALIDATION_ERROR",
                                        "Duplicate IDs found in batch input: [" + key + "]")};
            seen.push_back(key);
            if (auto it = batch_rejected.find(object + "/" + key); it != batch_rejected.end())
                return {400, error_body("VALIDATION_ERROR", it->second)};
        }
        const std::string started = now_iso();
        json::Value results = json::Value::array();
        json::Value errors = json::Value::array();
        auto& store = records[object];
        for (const auto& in : inputs->items()) {
            std::string id = in.get_string("id", "");
            std::string key = id_key(unique, id);
            std::string problem;
            if (id.empty()) problem = "Property '" + unique + "' must not be empty";
            if (problem.empty() && unique == "email" && id.find('@') == std::string::npos)
                problem = "Property values were not valid: [{\"isValid\":false,\"message\":\"" +
                          id + " is not a valid email address.\",\"error\":\"INVALID_EMAIL\"," +
                          "\"name\":\"email\"}]";
            if (auto it = rejected.find(object + "/" + key);
                problem.empty() && it != rejected.end())
                problem = it->second;
            const json::Value* props = in.find("properties");
            if (problem.empty() && props != nullptr && !props->is_object())
                problem = "Invalid input: 'properties' must be an object";
            if (!problem.empty()) {
                json::Value ctx = json::Value::object();
                ctx.set("ids", json::Value::array().push_back(id));
                errors.push_back(json::Value::object()
                                     .set("status", "error")
                                     .set("category", "VALIDATION_ERROR")
                                     .set("message", problem)
                                     .set("context", std::move(ctx)));
                continue;
            }
            auto [it, created] = store.try_emplace(key);
            Record& r = it->second;
            const std::string now = now_iso();
            if (created) {
                r.id = std::to_string(next_id++);
                r.properties["createdate"] = now;
                r.properties["hs_object_id"] = r.id;
            }
            ++r.writes;
            r.properties[unique] = unique == "email" || unique == "domain" ? lower(id) : id;
            if (props != nullptr)
                for (const auto& [k, v] : props->members())
                    r.properties[k] = v.is_string() ? v.as_string() : json::dump(v);
            r.properties["lastmodifieddate"] = now;
            json::Value p = json::Value::object();
            for (const auto& [k, v] : r.properties)
                p.set(k, v);
            results.push_back(json::Value::object()
                                  .set("id", r.id)
                                  .set("new", created)
                                  .set("properties", std::move(p))
                                  .set("createdAt", r.properties["createdate"])
                                  .set("updatedAt", now)
                                  .set("archived", false));
        }
        json::Value out = json::Value::object();
        out.set("status", "COMPLETE");
        out.set("results", std::move(results));
        const bool partial = errors.size() > 0;
        if (partial) {
            out.set("numErrors", static_cast<int64_t>(errors.size()));
            out.set("errors", std::move(errors));
        }
        out.set("startedAt", started);
        out.set("completedAt", now_iso());
        return {partial ? 207 : 200, json::dump(out)};
    }

    std::pair<int, std::string> associate(const std::string& body) {
        json::Value doc;
        try {
            doc = json::parse(body);
        } catch (const std::exception& e) {
            return {400, error_body("VALIDATION_ERROR", e.what())};
        }
        const json::Value* inputs = doc.is_object() ? doc.find("inputs") : nullptr;
        if (inputs == nullptr || !inputs->is_array() || inputs->size() == 0)
            return {400,
                    error_body("VALIDATION_ERROR", "Invalid input JSON: 'inputs' is required")};
        auto known = [&](const std::string& object, const std::string& id) {
            for (const auto& [k, r] : records[object])
                if (r.id == id) return true;
            return false;
        };
        const std::string started = now_iso();
        json::Value results = json::Value::array();
        json::Value errors = json::Value::array();
        for (const auto& in : inputs->items()) {
            const json::Value* f = in.at_path("from.id");
            const json::Value* t = in.at_path("to.id");
            std::string from = f && f->is_string() ? f->as_string() : "";
            std::string to = t && t->is_string() ? t->as_string() : "";
            if (!known("contacts", from) || !known("companies", to)) {
                json::Value ctx = json::Value::object();
                ctx.set("ids", json::Value::array().push_back(from).push_back(to));
                errors.push_back(json::Value::object()
                                     .set("status", "error")
                                     .set("category", "VALIDATION_ERROR")
                                     .set("message", "No contacts with ID " + from +
                                                         " or no companies with ID " + to +
                                                         " exist")
                                     .set("context", std::move(ctx)));
                continue;
            }
            std::pair<std::string, std::string> p{from, to};
            if (std::find(associations.begin(), associations.end(), p) == associations.end())
                associations.push_back(p);
            json::Value type = json::Value::object()
                                   .set("category", "HUBSPOT_DEFINED")
                                   .set("typeId", 279)
                                   .set("label", nullptr);
            results.push_back(json::Value::object()
                                  .set("fromObjectTypeId", "0-1")
                                  .set("fromObjectId", std::stoll(from))
                                  .set("toObjectTypeId", "0-2")
                                  .set("toObjectId", std::stoll(to))
                                  .set("associationTypes", json::Value::array().push_back(type)));
        }
        json::Value out = json::Value::object();
        out.set("status", "COMPLETE");
        out.set("results", std::move(results));
        const bool partial = errors.size() > 0;
        if (partial) {
            out.set("numErrors", static_cast<int64_t>(errors.size()));
            out.set("errors", std::move(errors));
        }
        out.set("startedAt", started);
        out.set("completedAt", now_iso());
        return {partial ? 207 : 200, json::dump(out)};
    }

    void handle(HTTPServerRequest& req, HTTPServerResponse& resp) {
        std::string body;
        Poco::StreamCopier::copyToString(req.stream(), body);
        std::string auth = req.get("Authorization", "");
        const std::string& method = req.getMethod();
        std::string path = req.getURI();

        std::lock_guard lock(mu);
        requests.push_back({method, path, auth, body, 0, std::chrono::steady_clock::now()});
        auto reply = [&](int status, const std::string& text) {
            requests.back().status = status;
            answer(resp, status, text);
        };

        if (rate_limited > 0) {
            --rate_limited;
            if (!retry_after.empty()) resp.set("Retry-After", retry_after);
            json::Value v = json::Value::object();
            v.set("status", "error");
            v.set("message", "You have reached your ten_secondly_rolling limit.");
            v.set("errorType", "RATE_LIMIT");
            v.set("correlationId", correlation_id());
            v.set("policyName", "TEN_SECONDLY_ROLLING");
            return reply(429, json::dump(v));
        }
        if (failing > 0) {
            --failing;
            return reply(fail_status,
                         error_body("INTERNAL_ERROR", "internal error, please try again"));
        }
        if (auth != "Bearer " + token)
            return reply(401, error_body("INVALID_AUTHENTICATION",
                                         "Authentication credentials not found. This API "
                                         "supports OAuth 2.0 authentication and you can find "
                                         "more details at https://developers.hubspot.com/docs/"
                                         "methods/auth/oauth-overview"));

        std::string p = path.substr(0, path.find_first_of("?#"));
        for (const char* object : {"contacts", "companies"}) {
            if (p == std::string("/crm/v3/objects/") + object + "/batch/upsert") {
                if (method != "POST") return reply(405, error_body("METHOD_NOT_ALLOWED", method));
                auto [status, text] = upsert(object, body);
                return reply(status, text);
            }
        }
        if (p == "/crm/v4/associations/contacts/companies/batch/associate/default") {
            if (method != "POST") return reply(405, error_body("METHOD_NOT_ALLOWED", method));
            auto [status, text] = associate(body);
            return reply(status, text);
        }
        return reply(404, error_body("OBJECT_NOT_FOUND", "Unable to route " + method + " " + p));
    }
};

FakeHubSpot::FakeHubSpot(std::string token, const Tls& tls)
    : token_(std::move(token)), state_(std::make_shared<State>()), tls_(!tls.cert_file.empty()) {
    state_->token = token_;
    server_ =
        std::make_unique<FakeServer>([s = state_](auto& req, auto& resp) { s->handle(req, resp); },
                                     tls.cert_file, tls.key_file, 16);
    port_ = server_->port();
}

FakeHubSpot::~FakeHubSpot() {
    server_.reset();
}

std::string FakeHubSpot::base_url() const {
    return (tls_ ? "https://localhost:" : "http://127.0.0.1:") + std::to_string(port_);
}

void FakeHubSpot::rate_limit_next(int count, std::string retry_after) {
    std::lock_guard lock(state_->mu);
    state_->rate_limited = count;
    state_->retry_after = std::move(retry_after);
}

void FakeHubSpot::fail_next(int count, int status) {
    std::lock_guard lock(state_->mu);
    state_->failing = count;
    state_->fail_status = status;
}

void FakeHubSpot::reject(const std::string& object, const std::string& id, std::string message) {
    std::lock_guard lock(state_->mu);
    state_->rejected[object + "/" + State::id_key(object == "contacts" ? "email" : "domain", id)] =
        std::move(message);
}

void FakeHubSpot::reject_batch(const std::string& object, const std::string& id,
                               std::string message) {
    std::lock_guard lock(state_->mu);
    state_->batch_rejected[object + "/" +
                           State::id_key(object == "contacts" ? "email" : "domain", id)] =
        std::move(message);
}

std::vector<FakeHubSpot::Request> FakeHubSpot::requests() const {
    std::lock_guard lock(state_->mu);
    return state_->requests;
}

std::vector<FakeHubSpot::Request> FakeHubSpot::upserts(const std::string& object) const {
    std::vector<Request> out;
    for (auto& r : requests())
        if (r.path == "/crm/v3/objects/" + object + "/batch/upsert") out.push_back(r);
    return out;
}

std::map<std::string, FakeHubSpot::Record> FakeHubSpot::records(const std::string& object) const {
    std::lock_guard lock(state_->mu);
    auto it = state_->records.find(object);
    return it == state_->records.end() ? std::map<std::string, Record>{} : it->second;
}

std::vector<std::pair<std::string, std::string>> FakeHubSpot::associations() const {
    std::lock_guard lock(state_->mu);
    return state_->associations;
}

}  // namespace clayhook::test
