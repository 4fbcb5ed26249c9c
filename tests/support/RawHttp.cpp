#include "support/RawHttp.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace clayhook::test {

RawConnection::RawConnection(uint16_t port, const std::string& from) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0) throw std::runtime_error(std::string("socket: ") + std::strerror(errno));
    sockaddr_in local{};
    local.sin_family = AF_INET;
    if (::inet_pton(AF_INET, from.c_str(), &local.sin_addr) != 1)
        throw std::runtime_error("bad address " + from);
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&local), sizeof local) != 0) {
        int e = errno;
        ::close(fd_);
        throw std::runtime_error("bind " + from + ": " + std::strerror(e));
    }
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_port = htons(port);
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&to), sizeof to) != 0) {
        int e = errno;
        ::close(fd_);
        throw std::runtime_error(std::string("connect: ") + std::strerror(e));
    }
    int one = 1;
    ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

RawConnection::~RawConnection() {
    if (fd_ >= 0) ::close(fd_);
}

bool RawConnection::send(std::string_view bytes) {
    while (!bytes.empty()) {
        ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
        if (n <= 0) {
            if (n < 0 && errno == EINTR) continue;
            return false;
        }
        bytes.remove_prefix(static_cast<size_t>(n));
    }
    return true;
}

void RawConnection::half_close() {
    ::shutdown(fd_, SHUT_WR);
}

std::string RawConnection::read_now(bool* closed) {
    std::string out = std::move(pending_);
    pending_.clear();
    if (closed) *closed = false;
    char buf[16384];
    while (true) {
        ssize_t n = ::recv(fd_, buf, sizeof buf, MSG_DONTWAIT);
        if (n > 0) {
            out.append(buf, static_cast<size_t>(n));
            continue;
        }
        if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
            if (closed) *closed = true;
        }
        return out;
    }
}

std::string RawConnection::read_until_close(std::chrono::milliseconds timeout, bool* closed) {
    auto until = std::chrono::steady_clock::now() + timeout;
    std::string out = std::move(pending_);
    pending_.clear();
    if (closed) *closed = false;
    char buf[16384];
    while (true) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            until - std::chrono::steady_clock::now());
        if (left.count() <= 0) return out;
        pollfd p{fd_, POLLIN, 0};
        int r = ::poll(&p, 1, static_cast<int>(left.count()));
        if (r <= 0) continue;
        ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
        if (n > 0) {
            out.append(buf, static_cast<size_t>(n));
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (closed) *closed = true;  // EOF or reset
        return out;
    }
}

std::string RawConnection::read_until(std::string_view text, std::chrono::milliseconds timeout) {
    auto until = std::chrono::steady_clock::now() + timeout;
    std::string out = std::move(pending_);
    pending_.clear();
    char buf[16384];
    while (out.find(text) == std::string::npos) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            until - std::chrono::steady_clock::now());
        if (left.count() <= 0) break;
        pollfd p{fd_, POLLIN, 0};
        if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
        ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
        if (n <= 0) break;
        out.append(buf, static_cast<size_t>(n));
    }
    return out;
}

std::vector<int> statuses(const std::string& bytes) {
    std::vector<int> out;
    size_t pos = 0;
    while (pos + 12 <= bytes.size() && bytes.compare(pos, 9, "HTTP/1.1 ") == 0) {
        int status = std::stoi(bytes.substr(pos + 9, 3));
        out.push_back(status);
        size_t end = bytes.find("\r\n\r\n", pos);
        if (end == std::string::npos) break;
        size_t length = 0;
        std::string head = bytes.substr(pos, end - pos);
        for (char& c : head)
            c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        size_t cl = head.find("\r\ncontent-length:");
        if (cl != std::string::npos) length = std::stoul(head.substr(cl + 17));
        pos = end + 4 + (status >= 200 ? length : 0);
    }
    return out;
}

}  // namespace clayhook::test
