#pragma once

// What the strict HTTP/1.1 server (HttpServer) hands a service and takes
// back. Header bytes are kept exactly as they arrived (no RFC 2047 decoding,
// no charset conversion); only field names are lower-cased.

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace clayhook {

struct HttpRequest {
    std::string method;     // as sent (methods are case-sensitive)
    std::string target;     // origin-form: path and query, as sent
    std::string path;       // target up to '?'
    std::string query;      // after '?', without it ("" when none)
    int minor_version = 1;  // HTTP/1.<minor>, 0 or 1
    std::vector<std::pair<std::string, std::string>> headers;  // names lower-cased, in order
    std::string peer;                                          // the client's address, host only

    // The first field with this name (any case), or null.
    const std::string* header(std::string_view name) const;
};

// How the body of a request is framed (RFC 9112 §6.3).
enum class BodyFraming { none, length, chunked };

struct HttpReply {
    int status = 200;
    std::string content_type = "application/json";
    std::string body;
    std::vector<std::pair<std::string, std::string>> headers;  // extra fields
    bool close = false;  // close the connection after this answer

    HttpReply() = default;
    HttpReply(int s, std::string b, std::string type = "application/json")
        : status(s), content_type(std::move(type)), body(std::move(b)) {}
    HttpReply& set(std::string name, std::string value) {
        headers.emplace_back(std::move(name), std::move(value));
        return *this;
    }
};

// The standard reason phrase for a status ("Unknown" for others).
const char* reason_phrase(int status);

// How a response goes on the wire for one request.
struct ReplyFraming {
    bool close = false;                // Connection: close, the connection's last answer
    bool announce_keep_alive = false;  // Connection: keep-alive (an HTTP/1.0 client kept)
    bool head = false;                 // an answer to HEAD: no body, its Content-Length kept
};

// The response as bytes on the wire: status line, Content-Type,
// Content-Length, the extra fields, the Connection field, the body.
std::string serialize(const HttpReply& response, ReplyFraming framing);

// The framing of an answer to `request` (null: before any request was read):
// keep-alive announced to an HTTP/1.0 client kept open, no body for HEAD.
ReplyFraming reply_framing(const HttpRequest* request, bool close);

// {"error":"<why>"}, with quotes, backslashes and control bytes dropped from
// `why` (a parser's reason: never a header value).
std::string json_error(std::string_view why);

// The bare 503 a connection refused at accept gets: Retry-After: 1, closed.
std::string busy_answer(const std::string& json_body);

}  // namespace clayhook
