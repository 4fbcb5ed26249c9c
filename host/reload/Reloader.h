#pragma once

// Hot reload, make before break: read and validate the config file again,
// load and create every plugin of the new set, and only when all of it
// succeeded swap the new generation in (the dispatcher's plugins, the
// intake's sources and fan-out). A failed reload changes nothing. Requests
// and plugin calls already running finish on the generation they started
// with; an old plugin instance (and its library) goes when its last call
// returns.
//
// Triggered by SIGHUP and by POST /admin/reload; reloads run one at a time,
// and one asked for while another runs follows it.

#include "config/Config.h"

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace clayhook {

class GenerationBuilder;
class Logger;
class Metrics;
struct Generation;

// Where a reload's generation goes: the Host, which hands it to its
// components. swap() throws, having changed nothing, when it cannot be taken.
class GenerationSwap {
  public:
    virtual ~GenerationSwap() = default;
    virtual void swap(std::shared_ptr<const Generation> next) = 0;
};

struct ReloadStatus {
    uint64_t generation = 1;  // 1 is the config the host started with
    uint64_t reloads_ok = 0;
    uint64_t reloads_failed = 0;
    std::string last_result;                 // "", "ok" or "failed"
    std::string last_error;                  // why the last one failed
    std::vector<std::string> last_warnings;  // e.g. settings that need a restart
    std::string last_trigger;                // "SIGHUP", "admin"
    int64_t last_at_ms = 0;
    double last_duration_ms = 0;
};

class Reloader {
  public:
    // `current`: the config of the generation serving (for the sections
    // that only a restart changes).
    Reloader(std::string config_file, Config current, const GenerationBuilder& builder,
             GenerationSwap& target, Logger& log, Metrics& metrics);
    ~Reloader();
    Reloader(const Reloader&) = delete;
    Reloader& operator=(const Reloader&) = delete;

    // Runs one reload (after the one running, if any) and returns its result.
    ReloadStatus reload(const std::string& trigger);
    ReloadStatus status() const;
    // The config in force (waits for a reload in progress) and its file.
    Config config();
    const std::string& file() const { return file_; }

  private:
    std::string fail(ReloadStatus& st, const std::string& why);

    std::string file_;
    const GenerationBuilder& builder_;
    GenerationSwap& target_;
    Logger& log_;
    Metrics& metrics_;

    std::mutex reload_mu_;  // one reload at a time
    Config config_;         // under reload_mu_: the config in force
    mutable std::mutex status_mu_;
    ReloadStatus status_;
};

}  // namespace clayhook
