// rnicsim trace show|check|convert|schema: verb traces (docs/traces.md) from the command line.
#include <fmt/core.h>

#include <cstdio>
#include <string>
#include <vector>

#include "bridge/trace/trace.h"
#include "tools/rnicsim/commands.h"

namespace {

constexpr const char* kUsage =
    "usage: rnicsim trace show TRACE [--from N] [--count N]\n"
    "       rnicsim trace check TRACE...\n"
    "       rnicsim trace convert IN OUT [--to jsonl|binary]\n"
    "       rnicsim trace schema\n"
    "TRACE is a verb trace in either form (docs/traces.md): JSON Lines or binary.\n"
    "  show     one line per record: number, time, thread, call, fields, -> return value\n"
    "  check    validate every record (fields, types, objects' lives, the end record)\n"
    "  convert  to the other form (by OUT's name: .jsonl is JSON Lines, else binary), lossless\n"
    "  schema   the calls and their fields, as a Markdown table\n";

int usage_error(const std::string& why) {
  fmt::print(stderr, "rnicsim trace: {}\n{}", why, kUsage);
  return 2;
}

bool parse_count(const std::string& s, uint64_t* out) {
  if (s.empty() || s.find_first_not_of("0123456789") != std::string::npos || s.size() > 18)
    return false;
  *out = std::stoull(s);
  return true;
}

}  // namespace

int trace_main(int argc, char** argv) {
  using namespace rn::trace;
  if (argc < 3) return usage_error("missing a subcommand (show, check, convert, schema)");
  const std::string sub = argv[2];
  std::vector<std::string> args(argv + 3, argv + argc);
  if (sub == "--help" || sub == "-h") {
    fmt::print("{}", kUsage);
    return 0;
  }
  try {
    if (sub == "schema") {
      fmt::print("{}", schema_markdown());
      return 0;
    }
    if (sub == "show") {
      std::string path;
      uint64_t from = 1, count = UINT64_MAX;
      for (size_t i = 0; i < args.size(); ++i) {
        if ((args[i] == "--from" || args[i] == "--count") && i + 1 < args.size()) {
          if (!parse_count(args[i + 1], args[i] == "--from" ? &from : &count))
            return usage_error(fmt::format("{} '{}': give a number", args[i], args[i + 1]));
          ++i;
        } else if (path.empty() && args[i][0] != '-') {
          path = args[i];
        } else {
          return usage_error(fmt::format("unexpected argument '{}'", args[i]));
        }
      }
      if (path.empty()) return usage_error("missing TRACE");
      Reader r(path);
      Validator v(path);
      Json rec;
      uint64_t shown = 0;
      while (r.next(&rec)) {
        v.check(rec, r.record());
        if (r.record() >= from && shown < count) {
          fmt::print("{}\n", show_line(rec, r.record()));
          if (++shown == count) break;
        }
      }
      if (shown < count && !v.finish(r.record()))
        fmt::print("TRUNCATED: {}\n",
                   r.truncated() ? r.truncation()
                                 : fmt::format("no end record after record {}", r.record()));
      return 0;
    }
    if (sub == "check") {
      if (args.empty()) return usage_error("missing TRACE");
      int status = 0;
      for (const auto& path : args) {
        bool truncated = false;
        std::string why;
        try {
          auto recs = read_all(path, &truncated, &why);
          std::string calls;
          if (truncated) {
            fmt::print("{}: TRUNCATED after {} records: {}\n", path, recs.size(), why);
            status = 1;
          } else {
            fmt::print("{}: OK: {} records ({}, version {}, pid {}, payload {})\n", path,
                       recs.size(), to_string(Reader(path).form()),
                       recs[0]["version"].get<uint64_t>(), recs[0]["pid"].get<uint64_t>(),
                       recs[0]["payload"].get<std::string>());
          }
        } catch (const TraceError& e) {
          fmt::print(stderr, "rnicsim trace check: {}\n", e.what());
          status = 1;
        }
      }
      return status;
    }
    if (sub == "convert") {
      std::vector<std::string> paths;
      std::string to;
      for (size_t i = 0; i < args.size(); ++i) {
        if (args[i] == "--to" && i + 1 < args.size())
          to = args[++i];
        else if (args[i].rfind("--to=", 0) == 0)
          to = args[i].substr(5);
        else if (args[i][0] != '-')
          paths.push_back(args[i]);
        else
          return usage_error(fmt::format("unexpected argument '{}'", args[i]));
      }
      if (paths.size() != 2) return usage_error("convert takes IN and OUT");
      if (!to.empty() && to != "jsonl" && to != "binary")
        return usage_error(fmt::format("--to '{}': give jsonl or binary", to));
      Form form = to.empty()      ? form_for_path(paths[1])
                  : to == "jsonl" ? Form::kJsonl
                                  : Form::kBinary;
      Reader r(paths[0]);
      Validator v(paths[0]);
      Writer w(paths[1], form);
      Json rec;
      uint64_t n = 0;
      while (r.next(&rec)) {
        v.check(rec, r.record());
        w.write(rec);
        ++n;
      }
      w.close();
      bool ended = v.finish(r.record());
      fmt::print("{} ({}) -> {} ({}): {} records{}\n", paths[0], to_string(r.form()), paths[1],
                 to_string(form), n,
                 ended ? "" : " (TRUNCATED: the input has no end record; neither has the output)");
      return 0;
    }
  } catch (const TraceError& e) {
    fmt::print(stderr, "rnicsim trace {}: {}\n", sub, e.what());
    return 1;
  } catch (const std::exception& e) {
    fmt::print(stderr, "rnicsim trace {}: error: {}\n", sub, e.what());
    return 1;
  }
  return usage_error(fmt::format("unknown subcommand '{}'", sub));
}
