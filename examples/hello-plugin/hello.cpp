// The smallest useful clayhook plugin: logs every enrichment event it gets.
#include <clayhook/plugin.hpp>

#include <string>

class Hello {
  public:
    static constexpr const char* name = "hello";
    static constexpr const char* version = "1.0.0";
    static constexpr const char* events[] = {"enrichment.*"};

    Hello(clayhook::Host& host, const clayhook::json::Value& config)
        : host_(host), greeting_(config.get_string("greeting", "hello")) {}

    clayhook::Result handle(const clayhook::Event& event) {
        host_.info(greeting_ + ": " + std::string(event.type) + " " + std::string(event.id));
        return clayhook::Result::done();
    }

  private:
    clayhook::Host& host_;
    std::string greeting_;
};

CLAYHOOK_PLUGIN(Hello)
