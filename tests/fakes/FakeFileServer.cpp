#include "fakes/FakeFileServer.h"

#include "support/FakeServer.h"

#include <Poco/DeflatingStream.h>
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
#include <condition_variable>
#include <map>
#include <mutex>
#include <ostream>
#include <sstream>

namespace clayhook::test {

using Poco::Net::HTTPResponse;
using Poco::Net::HTTPServerRequest;
using Poco::Net::HTTPServerResponse;

namespace {

std::string gzip(const std::string& data) {
    std::ostringstream out;
    Poco::DeflatingOutputStream z(out, Poco::DeflatingStreamBuf::STREAM_GZIP);
    z.write(data.data(), static_cast<std::streamsize>(data.size()));
    z.close();
    return out.str();
}

std::string path_of(const std::string& target) {
    return target.substr(0, target.find('?'));
}

}  // namespace

struct FakeFileServer::State {
    mutable std::mutex mu;
    std::condition_variable cv;
    bool stopping = false;
    std::map<std::string, Route> routes;
    std::vector<Request> requests;

    // Sleeps, but wakes up at once when the server stops.
    void pause(std::chrono::milliseconds d) {
        if (d.count() <= 0) return;
        std::unique_lock lock(mu);
        cv.wait_for(lock, d, [this] { return stopping; });
    }

    void handle(HTTPServerRequest& req, HTTPServerResponse& resp) {
        Route r;
        bool found = false;
        {
            std::lock_guard lock(mu);
            requests.push_back({req.getMethod(), req.getURI(), req.get("Host", ""),
                                req.get("Accept-Encoding", ""), std::chrono::steady_clock::now()});
            auto it = routes.find(path_of(req.getURI()));
            if (it != routes.end()) {
                r = it->second;
                found = true;
            }
        }
        if (!found) {
            r.status = 404;
            r.body = "not found\n";
        }
        pause(r.delay_before_headers);

        std::string body = r.gzip || r.gzip_silently ? gzip(r.body) : r.body;
        resp.setStatusAndReason(static_cast<HTTPResponse::HTTPStatus>(r.status));
        for (const auto& [k, v] : r.headers)
            resp.set(k, v);
        if (!r.location.empty()) resp.set("Location", r.location);
        if (r.gzip) resp.set("Content-Encoding", "gzip");
        if (r.chunked) {
            resp.setChunkedTransferEncoding(true);
        } else if (!r.no_length) {
            resp.setContentLength64(
                static_cast<Poco::Int64>(r.content_length.value_or(body.size())));
        }
        std::ostream& out = resp.send();
        out.flush();
        pause(r.delay_before_body);

        size_t n = std::min(body.size(), r.truncate_after.value_or(body.size()));
        if (r.trickle_every.count() > 0) {
            size_t step = std::max<size_t>(r.trickle_bytes, 1);
            for (size_t i = 0; i < n && out.good(); i += step) {
                {
                    std::lock_guard lock(mu);
                    if (stopping) return;
                }
                out.write(body.data() + i, static_cast<std::streamsize>(std::min(step, n - i)));
                out.flush();
                pause(r.trickle_every);
            }
        } else {
            out.write(body.data(), static_cast<std::streamsize>(n));
        }
        out.flush();
    }
};

FakeFileServer::FakeFileServer(const Tls& tls)
    : state_(std::make_shared<State>()), tls_(!tls.cert_file.empty()) {
    server_ =
        std::make_unique<FakeServer>([s = state_](auto& req, auto& resp) { s->handle(req, resp); },
                                     tls.cert_file, tls.key_file, 16);
    port_ = server_->port();
}

FakeFileServer::~FakeFileServer() {
    {
        std::lock_guard lock(state_->mu);
        state_->stopping = true;
    }
    state_->cv.notify_all();
    server_.reset();
}

std::string FakeFileServer::url(const std::string& path_and_query, const std::string& host) const {
    return std::string(tls_ ? "https://" : "http://") + host + ":" + std::to_string(port_) +
           path_and_query;
}

void FakeFileServer::route(const std::string& path, Route r) {
    std::lock_guard lock(state_->mu);
    state_->routes[path] = std::move(r);
}

std::vector<FakeFileServer::Request> FakeFileServer::requests() const {
    std::lock_guard lock(state_->mu);
    return state_->requests;
}

size_t FakeFileServer::count(const std::string& path) const {
    std::lock_guard lock(state_->mu);
    return static_cast<size_t>(
        std::count_if(state_->requests.begin(), state_->requests.end(),
                      [&](const Request& q) { return path_of(q.target) == path; }));
}

}  // namespace clayhook::test
