#pragma once

#include "config/Config.h"

#include <stdexcept>
#include <string>

namespace clayhook {

// A config mistake: what() reads "file:line:column: key: message".
class ConfigError : public std::runtime_error {
  public:
    ConfigError(Position pos, std::string key, std::string message);
    const Position& position() const { return pos_; }
    const std::string& key() const { return key_; }
    const std::string& message() const { return message_; }

  private:
    Position pos_;
    std::string key_;
    std::string message_;
};

}  // namespace clayhook
