// Every configuration parameter of rnicsim: key, kind (with unit), default and description.
// `rnicsim params` prints this table; docs/configuration.md is generated from it.
#pragma once
#include "model/core/config.h"

namespace rn::system {
cfg::Schema make_schema();
}
