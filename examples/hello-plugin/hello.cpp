// The smallest useful clayhook plugin: logs every enrichment event it gets.
#include <clayhook/plugin.hpp>

#include <string>

class Hello {
  public:
    static constexpr const char* name = "hello";
    static constexpr const char* version = "1.0.0";
    static constexpr const char* events[] = {"enrichment.*"};
    // The config it takes: the host checks it and fills in the default.
    static constexpr clayhook::ConfigKey config[] = {
        clayhook::config::optional(clayhook::ConfigType::string, "greeting", "hello",
                                   "the word each log line starts with"),
    };

    Hello(clayhook::Host& host, const clayhook::json::Value& cfg)
        : host_(host), greeting_(cfg.get_string("greeting", "hello")) {}

    clayhook::Result handle(const clayhook::Event& event) {
        host_.info(greeting_ + ": " + std::string(event.type) + " " + std::string(event.id));
        return clayhook::Result::done();
    }

  private:
    clayhook::Host& host_;
    std::string greeting_;
};

CLAYHOOK_PLUGIN(Hello)
