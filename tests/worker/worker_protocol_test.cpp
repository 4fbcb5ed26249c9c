// The wire between the host and a plugin worker (host/worker/WorkerProtocol.h):
// frames round-trip exactly, and anything malformed is refused, never read
// past its end.
#include "worker/WorkerProtocol.h"

#include <catch2/catch.hpp>

#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>

using namespace clayhook;

namespace {

struct Pair {
    int fd[2] = {-1, -1};
    Pair() { REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM, 0, fd) == 0); }
    ~Pair() {
        for (int f : fd)
            if (f >= 0) ::close(f);
    }
    void close_writer() {
        ::close(fd[0]);
        fd[0] = -1;
    }
};

void write_raw(int fd, const std::string& bytes) {
    REQUIRE(::write(fd, bytes.data(), bytes.size()) == static_cast<ssize_t>(bytes.size()));
}

}  // namespace

TEST_CASE("worker protocol: frames round-trip, several in one read", "[worker]") {
    Pair p;
    wire::Out a(wire::Type::call);
    a.i64(-7).u32(2).str(std::string("a\0b", 3)).f64(0.25).u8(9).i32(-3);
    wire::Out b(wire::Type::result);
    b.str("");
    REQUIRE(wire::write_frame(p.fd[0], a.done() + b.done()));
    p.close_writer();

    wire::Reader r(p.fd[1]);
    wire::Type t;
    std::string_view payload;
    REQUIRE(r.next(t, payload));
    CHECK(t == wire::Type::call);
    wire::In in(t, payload);
    CHECK(in.i64() == -7);
    CHECK(in.u32() == 2);
    CHECK(in.str() == std::string_view("a\0b", 3));
    CHECK(in.f64() == 0.25);
    CHECK(in.u8() == 9);
    CHECK(in.i32() == -3);
    CHECK_NOTHROW(in.end());
    REQUIRE(r.next(t, payload));
    CHECK(t == wire::Type::result);
    wire::In in2(t, payload);
    CHECK(in2.str().empty());
    CHECK_FALSE(r.next(t, payload));  // end of stream between frames
}

TEST_CASE("worker protocol: short, oversized, trailing and cut frames are refused", "[worker]") {
    SECTION("a field past the frame's end") {
        wire::In in(wire::Type::result, std::string_view("\x01\x00", 2));
        CHECK_THROWS_AS(in.u32(), wire::ProtocolError);
    }
    SECTION("a string longer than what is left") {
        const std::string bytes("\xff\xff\x00\x00xy", 6);
        wire::In in(wire::Type::log, bytes);
        CHECK_THROWS_AS(in.str(), wire::ProtocolError);
    }
    SECTION("bytes left over") {
        wire::In in(wire::Type::log, std::string_view("\x00\x00\x00\x00!", 5));
        CHECK(in.str().empty());
        CHECK_THROWS_AS(in.end(), wire::ProtocolError);
    }
    // What the next frame read makes of these bytes on the stream (then its
    // end when `closed`).
    auto next_refuses = [](const std::string& bytes, bool closed) {
        Pair p;
        write_raw(p.fd[0], bytes);
        if (closed) p.close_writer();
        wire::Reader r(p.fd[1]);
        wire::Type t;
        std::string_view payload;
        CHECK_THROWS_AS(r.next(t, payload), wire::ProtocolError);
    };
    SECTION("a length beyond the cap, refused before it is read") {
        next_refuses(std::string("\xff\xff\xff\x7f", 4), false);
    }
    SECTION("a zero length (no type byte)") {
        next_refuses(std::string("\x00\x00\x00\x00", 4), false);
    }
    SECTION("the stream ends inside a frame") {
        next_refuses(std::string("\x10\x00\x00\x00\x0c"
                                 "abc",
                                 8),
                     true);
    }
}

TEST_CASE("worker protocol: a frame refused by its length is refused before it is buffered",
          "[worker]") {
    Pair p;
    write_raw(p.fd[0], std::string("\xff\xff\xff\x7f", 4) + std::string(1000, 'x'));
    wire::Reader r(p.fd[1]);
    REQUIRE(r.fill());
    // The supervisor asks ready() after each read: it must not keep reading
    // (and buffering) towards a 2 GiB frame.
    CHECK_THROWS_AS(r.ready(), wire::ProtocolError);
}

TEST_CASE("worker protocol: writing to a peer that is gone fails, without SIGPIPE", "[worker]") {
    // In a child with SIGPIPE's default action (death) and unblocked, as in
    // the host's threads.
    pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        ::signal(SIGPIPE, SIG_DFL);
        sigset_t pipe;
        sigemptyset(&pipe);
        sigaddset(&pipe, SIGPIPE);
        ::sigprocmask(SIG_UNBLOCK, &pipe, nullptr);
        int fd[2];
        if (::socketpair(AF_UNIX, SOCK_STREAM, 0, fd) != 0) ::_exit(3);
        ::close(fd[1]);
        wire::Out f(wire::Type::log);
        f.i32(1).str("to nobody");
        ::_exit(wire::write_frame(fd[0], f.done()) ? 1 : 0);
    }
    int status = 0;
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    INFO("wait status " << status);
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
}
