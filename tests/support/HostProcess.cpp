#include "support/HostProcess.h"

#include "support/TestPaths.h"

#include <catch2/catch.hpp>

#include <signal.h>

#include <filesystem>
#include <fstream>

namespace clayhook::test {

namespace {

// The port of "ADDRESS:PORT" after `key` on the ready line; 0 when absent
// (or "off").
uint16_t port_of(const std::string& line, const std::string& key) {
    auto at = line.find(" " + key + "=");
    if (at == std::string::npos) return 0;
    at += key.size() + 2;
    auto end = line.find_first_of(" \n", at);
    std::string value = line.substr(at, end == std::string::npos ? end : end - at);
    auto colon = value.rfind(':');
    if (colon == std::string::npos) return 0;
    try {
        return static_cast<uint16_t>(std::stoi(value.substr(colon + 1)));
    } catch (const std::exception&) {
        return 0;
    }
}

}  // namespace

HostProcess::HostProcess() {
    options.env["TMPDIR"] = dir.path().string();
    options.unset_env.push_back("CLAYHOOK_CONFIG");
}

HostProcess::~HostProcess() {
    if (proc_) {
        proc_->signal(SIGTERM);
        proc_->wait(std::chrono::seconds(30));
    }
}

const std::string& HostProcess::write_config(const std::string& yaml) {
    std::string tmp = config + ".tmp";
    std::ofstream(tmp, std::ios::binary) << yaml;
    std::filesystem::permissions(
        tmp, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
    std::filesystem::rename(tmp, config);
    return config;
}

void HostProcess::start(std::chrono::milliseconds timeout) {
    if (!try_start(timeout))
        FAIL("clayhook serve did not get ready; its output:\n" << proc_->out() << proc_->err());
}

bool HostProcess::try_start(std::chrono::milliseconds timeout) {
    proc_ = std::make_unique<Subprocess>(
        std::vector<std::string>{kClayhookBin, "serve", "--config", config}, options);
    if (!proc_->wait_for_output("msg=ready", timeout)) return false;
    std::string log = proc_->err();
    auto at = log.rfind("msg=ready");
    auto end = log.find('\n', at);
    std::string line = log.substr(at, end == std::string::npos ? end : end - at);
    port_ = port_of(line, "listen");
    admin_port_ = port_of(line, "admin");
    INFO(line);
    REQUIRE(port_ != 0);
    return true;
}

std::string HostProcess::url(const std::string& path) const {
    return "http://127.0.0.1:" + std::to_string(port_) + path;
}

void HostProcess::signal(int sig) const {
    if (proc_) proc_->signal(sig);
}

int HostProcess::wait(std::chrono::milliseconds timeout) {
    return proc_ ? proc_->wait(timeout) : -1;
}

int HostProcess::stop(std::chrono::milliseconds timeout) {
    signal(SIGTERM);
    return wait(timeout);
}

bool HostProcess::wait_for_output(const std::string& text, std::chrono::milliseconds timeout) {
    return proc_ && proc_->wait_for_output(text, timeout);
}

std::string HostProcess::err() const {
    return proc_ ? proc_->err() : "";
}

std::string HostProcess::out() const {
    return proc_ ? proc_->out() : "";
}

}  // namespace clayhook::test
