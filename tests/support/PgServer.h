#pragma once

// A real PostgreSQL server for tests: initdb into a fresh folder under /tmp,
// then the postgres binary of Debian's postgresql package, listening on a free
// port of 127.0.0.1 only (its Unix socket in that folder, never
// /var/run/postgresql), with fsync on and the log in <folder>/server.log.
//
// initdb and postgres refuse to run as root; when the tests run as root (CI
// does) both run as the `postgres` system user, and the folder is theirs.
// Startup waits on a condition (postmaster.pid says "ready" and PQping
// answers), bounded by 30 s; a failure throws std::runtime_error with the
// reason and the tail of the server log. The server is killed when the test
// process dies (PR_SET_PDEATHSIG), and the destructor stops it and removes the
// folder.
//
// Tests share one server (shared_pg_server()) and get isolation from
// create_database(); a test that stops, kills or reconfigures a server makes
// its own PgServer.
#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>

namespace clayhook::test {

class PgServer {
  public:
    struct Options {
        // PEM paths; when both are set the server starts with ssl=on, using
        // copies of them kept in its folder (the key mode 0600, as postgres wants).
        std::string ssl_cert_file, ssl_key_file;
    };

    PgServer();  // = PgServer(Options{})
    // initdb + start; throws std::runtime_error with the reason and the server log's tail.
    explicit PgServer(Options options);
    // Stops the server (fast shutdown: SIGINT, SIGKILL after 10 s), waits for
    // it, removes the folder.
    ~PgServer();
    PgServer(const PgServer&) = delete;
    PgServer& operator=(const PgServer&) = delete;

    uint16_t port() const { return port_; }
    const std::string& dir() const { return dir_; }
    // postgresql://postgres@127.0.0.1:PORT/DB; `extra` is appended as the
    // query, e.g. "sslmode=require".
    std::string url(const std::string& db = "postgres", const std::string& extra = "") const;
    // CREATE DATABASE with a fresh unique name (clayhook_test_<n>); returns its url(). Thread-safe.
    std::string create_database();
    // Runs `sql` (one or more statements) in the database at `db_url` over a
    // new libpq connection and returns the rows of the last result: each
    // row's columns joined by '|' (NULL as ""), rows joined by '\n'; "" for
    // a command. Throws std::runtime_error with PQerrorMessage on error. Thread-safe.
    std::string query(const std::string& db_url, const std::string& sql);

    // Fast shutdown (SIGINT to the postmaster) and wait for it to exit; idempotent.
    void stop();
    // Starts again on the same data dir and the same port (retrying for a few
    // seconds while the port is busy); no-op while running.
    void start();
    // SIGKILLs the postmaster and waits for it and for the children it had
    // (they exit when they notice it is gone); start() then recovers.
    void kill9();
    bool running() const;
    pid_t pid() const;  // the postmaster's, -1 when not running

    // The server log so far (<dir()>/server.log), and its last `lines` lines.
    std::string log() const;
    std::string log_tail(std::size_t lines = 30) const;

  private:
    void initdb();
    void launch(bool may_change_port);
    void reap_locked() const;  // forgets pid_ once the postmaster has exited
    void cleanup() noexcept;

    Options options_;
    std::string bin_dir_;
    std::string dir_, data_dir_, log_file_;
    uint16_t port_ = 0;
    bool as_postgres_ = false;  // root: initdb and postgres run as the postgres user
    uid_t uid_ = 0;
    gid_t gid_ = 0;
    mutable std::mutex mu_;
    mutable pid_t pid_ = -1;
    std::atomic<unsigned> next_db_{0};
};

// One server shared by the whole test process, started on first use and
// stopped at exit. Tests get isolation from create_database(). When it cannot
// start, every call throws the first attempt's error (no 30 s retry per test).
PgServer& shared_pg_server();

namespace detail {
// The bin folder of the newest PostgreSQL whose initdb matches `initdb_glob`
// (its postgres beside it); throws "PostgreSQL server binaries not found
// under <folder>: install Debian's postgresql package" when there is none.
std::string find_pg_bin_dir(const std::string& initdb_glob = "/usr/lib/postgresql/*/bin/initdb");
}  // namespace detail

}  // namespace clayhook::test
