#include "http/HttpMessage.h"

namespace clayhook {

const char* reason_phrase(int status) {
    switch (status) {
        case 100:
            return "Continue";
        case 200:
            return "OK";
        case 202:
            return "Accepted";
        case 204:
            return "No Content";
        case 303:
            return "See Other";
        case 400:
            return "Bad Request";
        case 401:
            return "Unauthorized";
        case 403:
            return "Forbidden";
        case 404:
            return "Not Found";
        case 405:
            return "Method Not Allowed";
        case 408:
            return "Request Timeout";
        case 409:
            return "Conflict";
        case 411:
            return "Length Required";
        case 413:
            return "Content Too Large";
        case 414:
            return "URI Too Long";
        case 415:
            return "Unsupported Media Type";
        case 417:
            return "Expectation Failed";
        case 422:
            return "Unprocessable Content";
        case 429:
            return "Too Many Requests";
        case 431:
            return "Request Header Fields Too Large";
        case 500:
            return "Internal Server Error";
        case 501:
            return "Not Implemented";
        case 503:
            return "Service Unavailable";
        case 505:
            return "HTTP Version Not Supported";
        default:
            return "Unknown";
    }
}

std::string serialize(const HttpReply& r, ReplyFraming f) {
    std::string out;
    out.reserve(160 + r.body.size());
    out += "HTTP/1.1 ";
    out += std::to_string(r.status);
    out += ' ';
    out += reason_phrase(r.status);
    out += "\r\n";
    if (!r.content_type.empty()) {
        out += "Content-Type: ";
        out += r.content_type;
        out += "\r\n";
    }
    out += "Content-Length: ";
    out += std::to_string(r.body.size());
    out += "\r\n";
    for (const auto& [name, value] : r.headers) {
        out += name;
        out += ": ";
        out += value;
        out += "\r\n";
    }
    if (f.close)
        out += "Connection: close\r\n";
    else if (f.announce_keep_alive)
        out += "Connection: keep-alive\r\n";
    out += "\r\n";
    if (!f.head) out += r.body;
    return out;
}

ReplyFraming reply_framing(const HttpRequest* req, bool close) {
    ReplyFraming f;
    f.close = close;
    f.announce_keep_alive = !close && req != nullptr && req->minor_version == 0;
    f.head = req != nullptr && req->method == "HEAD";
    return f;
}

std::string json_error(std::string_view why) {
    std::string out = R"({"error":")";
    for (char c : why)
        if (c != '"' && c != '\\' && static_cast<unsigned char>(c) >= 0x20) out += c;
    return out + "\"}";
}

std::string busy_answer(const std::string& json_body) {
    HttpReply r(503, json_body);
    r.set("Retry-After", "1");
    return serialize(r, ReplyFraming{true, false, false});
}

}  // namespace clayhook
