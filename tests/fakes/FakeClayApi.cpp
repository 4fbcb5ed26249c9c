#include "fakes/FakeClayApi.h"

#include "routing/EventCatalogue.h"
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
#include <Poco/URI.h>

#include <algorithm>
#include <ctime>
#include <random>

namespace clayhook::test {

namespace json = clayhook::json;
using Poco::Net::HTTPResponse;
using Poco::Net::HTTPServerRequest;
using Poco::Net::HTTPServerResponse;

namespace {

std::string random_hex(size_t chars) {
    static thread_local std::mt19937_64 rng{std::random_device{}()};
    static constexpr char kHex[] = "0123456789abcdef";
    std::string out;
    for (size_t i = 0; i < chars; ++i)
        out += kHex[rng() & 15];
    return out;
}

std::string now_iso() {
    std::time_t t = std::time(nullptr);
    std::tm tm{};
    ::gmtime_r(&t, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

json::Value to_json(const FakeClayApi::Webhook& w, bool with_secret) {
    json::Value v = json::Value::object();
    v.set("id", w.id);
    v.set("url", w.url);
    json::Value events = json::Value::array();
    for (const auto& e : w.events)
        events.push_back(e);
    v.set("events", std::move(events));
    v.set("table_id", w.table_id);
    if (with_secret) v.set("secret", w.secret);
    v.set("created_at", w.created_at);
    return v;
}

json::Value detail(const std::string& field, const std::string& message) {
    json::Value d = json::Value::object();
    d.set("field", field);
    d.set("message", message);
    return d;
}

void answer(HTTPServerResponse& resp, int status, const std::string& body) {
    resp.setStatus(static_cast<HTTPResponse::HTTPStatus>(status));
    if (body.empty()) {
        resp.setContentLength(0);
        resp.send();
        return;
    }
    resp.setContentType("application/json");
    resp.sendBuffer(body.data(), body.size());
}

}  // namespace

struct FakeClayApi::State {
    std::string api_key;
    mutable std::mutex mu;
    std::vector<Request> requests;
    std::vector<Webhook> webhooks;
    int rate_limited = 0;
    std::string retry_after;

    Webhook add(const std::string& url, const std::string& table_id,
                std::vector<std::string> events) {
        Webhook w{"wh_" + random_hex(16), url, table_id, now_iso(), "clay_whsec_" + random_hex(48),
                  std::move(events)};
        webhooks.push_back(w);
        return w;
    }

    // Validation as the contract describes it: a 422 listing every problem.
    json::Value validate_registration(const json::Value& doc) const {
        json::Value details = json::Value::array();
        if (!doc.is_object()) {
            details.push_back(detail("body", "must be a JSON object"));
            return details;
        }
        const json::Value* url = doc.find("url");
        std::string u = url && url->is_string() ? url->as_string() : "";
        bool good_url = false;
        if (u.rfind("https://", 0) == 0) {
            try {
                good_url = !Poco::URI(u).getHost().empty();
            } catch (const std::exception&) {
            }
        }
        if (!good_url) details.push_back(detail("url", "must be an absolute https:// URL"));
        const json::Value* table = doc.find("table_id");
        if (table == nullptr || !table->is_string() || table->as_string().empty())
            details.push_back(detail("table_id", "is required"));
        const json::Value* events = doc.find("events");
        if (events == nullptr || !events->is_array() || events->size() == 0) {
            details.push_back(detail("events", "at least one event type is required"));
        } else {
            for (const auto& e : events->items()) {
                std::string name = e.is_string() ? e.as_string() : json::dump(e);
                if (!is_clay_event_type(name))
                    details.push_back(detail("events", "unknown event type '" + name + "'"));
            }
        }
        return details;
    }

    void handle(HTTPServerRequest& req, HTTPServerResponse& resp) {
        std::string body;
        Poco::StreamCopier::copyToString(req.stream(), body);
        std::string auth = req.get("Authorization", "");
        const std::string& method = req.getMethod();
        std::string path = req.getURI();

        std::lock_guard lock(mu);
        requests.push_back({method, path, auth, body, std::chrono::steady_clock::now()});

        if (rate_limited > 0) {
            --rate_limited;
            if (!retry_after.empty()) resp.set("Retry-After", retry_after);
            return answer(resp, 429, R"({"error":"rate_limited"})");
        }
        if (auth != "Bearer " + api_key) return answer(resp, 401, R"({"error":"invalid_api_key"})");

        std::vector<std::string> seg;
        // Split the raw path before decoding, so an escaped '/' stays inside
        // its segment (URI::getPath() would decode it first).
        std::string p = path.substr(0, path.find_first_of("?#"));
        for (size_t i = 1; i <= p.size();) {
            size_t j = p.find('/', i);
            if (j == std::string::npos) j = p.size();
            std::string decoded;
            Poco::URI::decode(p.substr(i, j - i), decoded);
            seg.push_back(decoded);
            i = j + 1;
        }

        if (seg.size() == 2 && seg[0] == "v1" && seg[1] == "webhooks") {
            if (method == "GET") {
                json::Value data = json::Value::array();
                for (const auto& w : webhooks)
                    data.push_back(to_json(w, false));
                json::Value doc = json::Value::object();
                doc.set("data", std::move(data));
                return answer(resp, 200, json::dump(doc));
            }
            if (method == "POST") {
                json::Value doc;
                try {
                    doc = json::parse(body);
                } catch (const std::exception&) {
                }
                json::Value details = validate_registration(doc);
                if (details.size() > 0) {
                    json::Value e = json::Value::object();
                    e.set("error", "validation_error");
                    e.set("details", std::move(details));
                    return answer(resp, 422, json::dump(e));
                }
                std::vector<std::string> events;
                for (const auto& e : doc.find("events")->items())
                    events.push_back(e.as_string());
                Webhook w = add(doc.get_string("url", ""), doc.get_string("table_id", ""),
                                std::move(events));
                return answer(resp, 201, json::dump(to_json(w, true)));
            }
            return answer(resp, 405, R"({"error":"method_not_allowed"})");
        }
        if (seg.size() == 3 && seg[0] == "v1" && seg[1] == "webhooks") {
            if (method != "DELETE") return answer(resp, 405, R"({"error":"method_not_allowed"})");
            auto it = std::find_if(webhooks.begin(), webhooks.end(),
                                   [&](const Webhook& w) { return w.id == seg[2]; });
            if (it == webhooks.end()) return answer(resp, 404, R"({"error":"not_found"})");
            webhooks.erase(it);
            return answer(resp, 204, "");
        }
        if (seg.size() == 6 && seg[0] == "v1" && seg[1] == "tables" && seg[3] == "rows" &&
            seg[5] == "enrich") {
            if (method != "POST") return answer(resp, 405, R"({"error":"method_not_allowed"})");
            json::Value doc;
            try {
                doc = json::parse(body);
            } catch (const std::exception&) {
            }
            const json::Value* column = doc.is_object() ? doc.find("column") : nullptr;
            if (column == nullptr || !column->is_string() || column->as_string().empty()) {
                json::Value details = json::Value::array();
                details.push_back(detail("column", "is required"));
                json::Value e = json::Value::object();
                e.set("error", "validation_error");
                e.set("details", std::move(details));
                return answer(resp, 422, json::dump(e));
            }
            json::Value ok = json::Value::object();
            ok.set("status", "queued");
            ok.set("table_id", seg[2]);
            ok.set("row_id", seg[4]);
            ok.set("column", column->as_string());
            return answer(resp, 202, json::dump(ok));
        }
        return answer(resp, 404, R"({"error":"not_found"})");
    }
};

FakeClayApi::FakeClayApi(std::string api_key, const Tls& tls)
    : api_key_(std::move(api_key)),
      state_(std::make_shared<State>()),
      tls_(!tls.cert_file.empty()) {
    state_->api_key = api_key_;
    server_ =
        std::make_unique<FakeServer>([s = state_](auto& req, auto& resp) { s->handle(req, resp); },
                                     tls.cert_file, tls.key_file, 8);
    port_ = server_->port();
}

FakeClayApi::~FakeClayApi() {
    server_.reset();
}

std::string FakeClayApi::base_url() const {
    return (tls_ ? "https://127.0.0.1:" : "http://127.0.0.1:") + std::to_string(port_);
}

void FakeClayApi::rate_limit_next(int count, std::string retry_after) {
    std::lock_guard lock(state_->mu);
    state_->rate_limited = count;
    state_->retry_after = std::move(retry_after);
}

FakeClayApi::Webhook FakeClayApi::seed(const std::string& url, const std::string& table_id,
                                       std::vector<std::string> events) {
    std::lock_guard lock(state_->mu);
    return state_->add(url, table_id, std::move(events));
}

std::vector<FakeClayApi::Request> FakeClayApi::requests() const {
    std::lock_guard lock(state_->mu);
    return state_->requests;
}

std::vector<FakeClayApi::Webhook> FakeClayApi::webhooks() const {
    std::lock_guard lock(state_->mu);
    return state_->webhooks;
}

}  // namespace clayhook::test
