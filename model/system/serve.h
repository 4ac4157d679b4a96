// `rnicsim serve`: the virtual device. Hosts the simulated NICs and the wire of a configuration
// and lets real processes attach to a host's NIC (bridge/vdev: our libibverbs, or any program
// using vdev::ClientDevice). serve plays the part of each host's kernel driver too: it owns the
// command interface and the event queue, runs commands on a process's behalf after checking that
// every object they name is the process's own, lets a process ring only its own doorbells,
// routes each event to the process that owns its object, and destroys what a process leaves when
// it goes. docs/virtual-device.md describes its use, its protocol and how time passes.
#pragma once
#include <cstdio>
#include <string>

#include "model/core/config.h"

namespace rn::system {

struct ServeOptions {
  std::string dir;      // where the sockets and hosts.json go (created)
  std::string out_dir;  // stats.json and wire.pcap when serve stops ("" = none)
  // Stop by itself once this many processes have attached and gone (0: run until SIGINT or
  // SIGTERM).
  int exit_after = 0;
  std::FILE* log = stderr;
};

// Runs serve until it is told to stop; returns the process's exit status (0, 1 if an output
// could not be written, 2 if it could not start).
int serve(const cfg::Config& c, const std::string& config_name, const ServeOptions& o);

}  // namespace rn::system
