#pragma once

// `clayhook serve` as a real child process, the way every test that needs a
// whole host starts one: its config in a test folder of its own, started
// (and started again on the same folder after a kill), `msg=ready` awaited,
// the listener's and the admin API's ports read from the ready line, signals,
// a stop, and its output for the checks.
#include "support/Subprocess.h"
#include "support/TempDir.h"

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

namespace clayhook::test {

class HostProcess {
  public:
    // A fresh test folder; nothing runs until start().
    HostProcess();
    // A host still running gets SIGTERM and up to 30 s to exit (then SIGKILL).
    ~HostProcess();
    HostProcess(const HostProcess&) = delete;
    HostProcess& operator=(const HostProcess&) = delete;

    TempDir dir;
    // The config file (dir/c.yaml); write it with write_config().
    const std::string config = dir.file("c.yaml");
    // The child's environment. TMPDIR is the test folder from the start (its
    // plugin staging folders go there, also when it is SIGKILLed); CLAYHOOK_CONFIG
    // is unset so nothing of the developer's environment leaks in.
    Subprocess::Options options;

    // Writes `yaml` as the config file (mode 0600), atomically (a temporary
    // file renamed over it, as an operator's editor does); returns its path.
    const std::string& write_config(const std::string& yaml);

    // Starts `clayhook serve --config <config>` (a previous process must have
    // exited) and REQUIREs `msg=ready` within `timeout` and a listen port.
    void start(std::chrono::milliseconds timeout = std::chrono::seconds(30));
    // The same, but false (no failure) when it exits or times out before
    // `msg=ready`: a host that dies during its start (a poison delivery
    // handed over before the ready line), as the test expects it may.
    bool try_start(std::chrono::milliseconds timeout = std::chrono::seconds(30));

    uint16_t port() const { return port_; }              // the intake listener
    uint16_t admin_port() const { return admin_port_; }  // 0 when admin is off
    // http://127.0.0.1:<port><path>
    std::string url(const std::string& path) const;

    void signal(int sig) const;
    // Waits for the exit; its code (128+signal when killed), -1 on timeout.
    int wait(std::chrono::milliseconds timeout = std::chrono::seconds(30));
    // SIGTERM, then wait(): the exit code.
    int stop(std::chrono::milliseconds timeout = std::chrono::seconds(30));
    // Until the output contains `text`; false on timeout or exit without it.
    bool wait_for_output(const std::string& text,
                         std::chrono::milliseconds timeout = std::chrono::seconds(30));

    std::string err() const;  // the log (serve logs to stderr)
    std::string out() const;
    bool started() const { return proc_ != nullptr; }

  private:
    std::unique_ptr<Subprocess> proc_;
    uint16_t port_ = 0, admin_port_ = 0;
};

}  // namespace clayhook::test
