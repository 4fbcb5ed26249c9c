// PgServer, the real PostgreSQL server tests run against: databases from the
// shared server are separate, query() returns what the server said, the data
// survives stop()+start() and a SIGKILL (crash recovery), TLS works when asked
// for and is refused when not offered, and failures say why.
#include "support/PgServer.h"
#include "support/TestPki.h"
#include "support/Wait.h"

#include <catch2/catch.hpp>

#include <libpq-fe.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <future>
#include <memory>
#include <sstream>
#include <vector>

using namespace clayhook::test;
using namespace std::chrono_literals;
using Catch::Matchers::Contains;

namespace {

bool process_exists(pid_t pid) {
    return ::kill(pid, 0) == 0 || errno != ESRCH;
}

// The uids of a process (real, effective, saved, filesystem), from /proc.
std::vector<long> uids_of(pid_t pid) {
    std::string status = read_file("/proc/" + std::to_string(pid) + "/status");
    auto at = status.find("Uid:");
    std::vector<long> uids;
    if (at == std::string::npos) return uids;
    std::istringstream in(status.substr(at + 4, status.find('\n', at) - at - 4));
    for (long u; in >> u;)
        uids.push_back(u);
    return uids;
}

std::size_t count(const std::string& text, const std::string& what) {
    std::size_t n = 0;
    for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + 1))
        ++n;
    return n;
}

}  // namespace

TEST_CASE("PgServer: databases from the shared server are separate", "[pg-server]") {
    PgServer& pg = shared_pg_server();
    REQUIRE(pg.running());
    const std::string a = pg.create_database(), b = pg.create_database();
    CHECK(a != b);
    CHECK_THAT(a, Contains("postgresql://postgres@127.0.0.1:" + std::to_string(pg.port()) +
                           "/clayhook_test_"));

    pg.query(a,
             "CREATE TABLE t (id int PRIMARY KEY, name text); "
             "INSERT INTO t VALUES (1, 'one'), (2, 'two')");
    CHECK(pg.query(a, "SELECT id, name FROM t ORDER BY id") == "1|one\n2|two");
    CHECK(pg.query(b, "SELECT count(*) FROM pg_tables WHERE tablename = 't'") == "0");
    CHECK_THROWS_WITH(pg.query(b, "SELECT * FROM t"), Contains("relation \"t\" does not exist"));
    CHECK(pg.query(a, "SELECT current_database()") != pg.query(b, "SELECT current_database()"));
    // The same server hands out the same instance.
    CHECK(&shared_pg_server() == &pg);
}

TEST_CASE("PgServer: query returns the last result's rows as text", "[pg-server]") {
    PgServer& pg = shared_pg_server();
    const std::string db = pg.create_database();
    CHECK(pg.query(db, "SELECT 1, 'a b', NULL, true") == "1|a b||t");
    CHECK(pg.query(db, "SELECT 1; SELECT 2 UNION ALL SELECT 3") == "2\n3");
    CHECK(pg.query(db, "CREATE TABLE x (v int)") == "");
    CHECK(pg.query(db, "SELECT v FROM x") == "");
    CHECK(pg.query(db, "SELECT current_user") == "postgres");
    CHECK_THROWS_WITH(pg.query(db, "SELEC 1"), Contains("syntax error"));
    CHECK_THROWS_WITH(pg.query(pg.url("no_such_db"), "SELECT 1"),
                      Contains("database \"no_such_db\" does not exist"));
    CHECK(pg.url("d", "sslmode=disable") ==
          "postgresql://postgres@127.0.0.1:" + std::to_string(pg.port()) + "/d?sslmode=disable");
}

TEST_CASE("PgServer: the server runs with the settings asked for, never as root", "[pg-server]") {
    PgServer& pg = shared_pg_server();
    const std::string db = pg.url();
    CHECK(pg.query(db, "SHOW listen_addresses") == "127.0.0.1");
    CHECK(pg.query(db, "SHOW port") == std::to_string(pg.port()));
    CHECK(pg.query(db, "SHOW unix_socket_directories") == pg.dir());
    CHECK(pg.query(db, "SHOW fsync") == "on");
    CHECK(pg.query(db, "SHOW max_connections") == "200");
    CHECK(pg.query(db, "SHOW shared_buffers") == "32MB");
    CHECK(pg.query(db, "SHOW logging_collector") == "off");
    CHECK(pg.query(db, "SHOW ssl") == "off");
    CHECK(pg.query(db, "SHOW server_encoding") == "UTF8");
    CHECK(pg.query(db, "SHOW data_directory") == pg.dir() + "/data");
    // Its log goes to the folder.
    CHECK_THAT(pg.log(), Contains("database system is ready to accept connections"));
    CHECK_THAT(pg.dir(), Contains("/tmp/clayhook-pg-"));

    struct stat st {};
    REQUIRE(::stat(pg.dir().c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0700);
    const std::vector<long> uids = uids_of(pg.pid());
    REQUIRE(uids.size() == 4);
    if (::geteuid() == 0) {
        // Root runs it as the postgres user: no uid of the postmaster is root.
        CHECK(std::count(uids.begin(), uids.end(), 0L) == 0);
        CHECK(static_cast<long>(st.st_uid) == uids[1]);
    } else {
        CHECK(uids[1] == static_cast<long>(::geteuid()));
        CHECK(st.st_uid == ::geteuid());
    }
}

TEST_CASE("PgServer: stop() and start() keep the data and the port", "[pg-server]") {
    PgServer pg;
    const uint16_t port = pg.port();
    const std::string db = pg.create_database();
    pg.query(db, "CREATE TABLE kept (v text); INSERT INTO kept VALUES ('before stop')");
    const pid_t first = pg.pid();

    pg.stop();
    CHECK_FALSE(pg.running());
    CHECK(pg.pid() == -1);
    CHECK_FALSE(process_exists(first));
    CHECK_THROWS_WITH(pg.query(db, "SELECT 1"), Contains("cannot connect"));
    pg.stop();  // idempotent

    pg.start();
    CHECK(pg.running());
    CHECK(pg.port() == port);
    CHECK(pg.pid() != first);
    CHECK(pg.query(db, "SELECT v FROM kept") == "before stop");
    pg.start();  // no-op while running
    CHECK(pg.query(db, "SHOW port") == std::to_string(port));
}

TEST_CASE("PgServer: after kill9() start() recovers the committed data only", "[pg-server]") {
    PgServer pg;
    const std::string db = pg.create_database();
    pg.query(db, "CREATE TABLE t (v text); INSERT INTO t VALUES ('committed')");

    // A transaction still open when the server dies.
    std::unique_ptr<PGconn, decltype(&PQfinish)> open(::PQconnectdb(db.c_str()), &PQfinish);
    REQUIRE(::PQstatus(open.get()) == CONNECTION_OK);
    for (const char* sql : {"BEGIN", "INSERT INTO t VALUES ('never committed')"}) {
        std::unique_ptr<PGresult, decltype(&PQclear)> r(::PQexec(open.get(), sql), &PQclear);
        REQUIRE(::PQresultStatus(r.get()) == PGRES_COMMAND_OK);
    }

    const pid_t first = pg.pid();
    pg.kill9();
    CHECK_FALSE(pg.running());
    CHECK_FALSE(process_exists(first));
    open.reset();

    pg.start();
    CHECK(pg.running());
    CHECK(pg.query(db, "SELECT v FROM t") == "committed");
    // It really crashed and recovered.
    CHECK_THAT(pg.log(), Contains("database system was interrupted") && Contains("redo done"));
    // And a second crash right after recovery is as fine.
    pg.kill9();
    pg.start();
    CHECK(pg.query(db, "SELECT count(*) FROM t") == "1");
}

TEST_CASE("PgServer: start() waits for a port that is briefly busy", "[pg-server]") {
    PgServer pg;
    const uint16_t port = pg.port();
    pg.stop();
    const std::string log_before = pg.log();

    // Someone else holds the port while start() begins.
    int s = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(s >= 0);
    // The stopped server's connections may sit in TIME_WAIT on the port:
    // SO_REUSEADDR binds past them (PostgreSQL does the same), while a
    // listening socket still keeps PostgreSQL out.
    int one = 1;
    REQUIRE(::setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) == 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    ::inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
    REQUIRE(::bind(s, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    REQUIRE(::listen(s, 1) == 0);

    auto started = std::async(std::launch::async, [&] { pg.start(); });
    const auto busy = [&] {
        return count(pg.log(), "Address already in use") >
               count(log_before, "Address already in use");
    };
    CHECK(wait_until(busy, 10s));
    ::close(s);
    REQUIRE(started.wait_for(30s) == std::future_status::ready);
    started.get();
    CHECK(pg.running());
    CHECK(pg.port() == port);
    CHECK(pg.query(pg.url(), "SELECT 1") == "1");
}

TEST_CASE("PgServer: with TLS it accepts sslmode=require and verify-full", "[pg-server]") {
    const TestPki& pki = TestPki::shared();
    PgServer pg(PgServer::Options{pki.good_cert, pki.good_key});
    CHECK(pg.query(pg.url("postgres", "sslmode=require"), "SHOW ssl") == "on");
    CHECK(pg.query(pg.url("postgres", "sslmode=require"),
                   "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()") == "t");
    // The certificate is the one given: it names 127.0.0.1 and the test CA signed it.
    CHECK(pg.query(pg.url("postgres", "sslmode=verify-full&sslrootcert=" + pki.ca), "SELECT 1") ==
          "1");
    // The key kept in the folder has the mode postgres insists on.
    struct stat st {};
    REQUIRE(::stat((pg.dir() + "/server.key").c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0600);
    // A plain connection is still allowed (sslmode=disable).
    CHECK(pg.query(pg.url("postgres", "sslmode=disable"),
                   "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()") == "f");
}

TEST_CASE("PgServer: sslmode=require to a server without TLS fails", "[pg-server]") {
    PgServer& pg = shared_pg_server();
    CHECK_THROWS_WITH(pg.query(pg.url("postgres", "sslmode=require"), "SELECT 1"),
                      Contains("server does not support SSL"));
}

TEST_CASE("PgServer: a server that cannot start throws with its log", "[pg-server]") {
    TempDir tmp;
    const std::string not_a_cert = tmp.write("bad.crt", "not a certificate\n");
    const std::string not_a_key = tmp.write("bad.key", "not a key\n");
    try {
        PgServer pg(PgServer::Options{not_a_cert, not_a_key});
        FAIL("PgServer started with a broken certificate");
    } catch (const std::runtime_error& e) {
        const std::string what = e.what();
        INFO(what);
        CHECK_THAT(what, Contains("postgres exited"));
        CHECK_THAT(what, Contains("could not load server certificate file"));
    }
}

TEST_CASE("PgServer: the destructor stops the server and removes its folder", "[pg-server]") {
    pid_t pid;
    std::string dir;
    {
        PgServer pg;
        pid = pg.pid();
        dir = pg.dir();
        REQUIRE(process_exists(pid));
        REQUIRE(std::filesystem::exists(dir + "/data/PG_VERSION"));
    }
    CHECK_FALSE(process_exists(pid));
    CHECK_FALSE(std::filesystem::exists(dir));
}

TEST_CASE("PgServer: missing server binaries are an error that says what to install",
          "[pg-server]") {
    CHECK_THROWS_WITH(detail::find_pg_bin_dir("/nonexistent-clayhook/*/bin/initdb"),
                      "PostgreSQL server binaries not found under /nonexistent-clayhook/*/bin: "
                      "install Debian's postgresql package");
    CHECK_THAT(detail::find_pg_bin_dir(), Contains("/usr/lib/postgresql/") && Contains("/bin"));
}
