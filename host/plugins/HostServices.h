#pragma once

#include <clayhook/plugin_abi.h>

#include <string>

namespace clayhook {

class Logger;
class Metrics;

// The host services table handed to one plugin instance, and the context its
// C callbacks find through host_ctx. Lives as long as the instance. Every
// callback is noexcept: nothing thrown on the host side may cross into the
// plugin.
class HostServices {
  public:
    HostServices(std::string instance_name, Logger& log, Metrics& metrics);
    HostServices(const HostServices&) = delete;
    HostServices& operator=(const HostServices&) = delete;

    const clayhook_host_api* api() const { return &api_; }
    const std::string& instance_name() const { return instance_; }
    Logger& logger() const { return log_; }
    Metrics& metrics() const { return metrics_; }

  private:
    std::string instance_;
    Logger& log_;
    Metrics& metrics_;
    clayhook_host_api api_{};
};

}  // namespace clayhook
