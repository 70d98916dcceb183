// send-event: send one event to a world and read its state, from C++.
//
// A client of the AOS kernel built only from `schemas/*.capnp` and the stock
// Cap'n Proto C++ library (Debian's capnproto + libcapnp-dev). It restores a
// token through the Gateway, opens a world of a universe, sends an event,
// prints what the event caused (the journal position, the traps of any
// workflow that trapped), then the state of one workflow and the records the
// event added to the world's journal. It is the `aos world send` and
// `aos world state` of the Python CLI, in about 150 lines.
//
// Usage:
//     AOS_TOKEN_FILE=DATA/admin.token send-event ADDRESS WORLD SCHEMA JSON [WORKFLOW]
// ADDRESS is "unix:/path/kernel.sock" or "HOST:PORT". The token comes from
// AOS_TOKEN or the file named by AOS_TOKEN_FILE, so it never shows in argv or
// in the output; AOS_UNIVERSE picks the universe (default "default").
// Exit status: 0; 1 on an error (one line on stderr: aos.<Code>: message);
// 3 when the event was journaled but every workflow it reached trapped (as
// `aos world send`).
//
// Build: `make` here (see README.md).

#include <capnp/ez-rpc.h>
#include <kj/exception.h>

#include <cstdlib>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>

#include "caps.capnp.h"
#include "kernel.capnp.h"
#include "world.capnp.h"

namespace {

std::string env(const char* name, const std::string& fallback) {
  const char* value = std::getenv(name);
  return value && *value ? value : fallback;
}

// The token, from AOS_TOKEN or the file AOS_TOKEN_FILE names; "" when neither has one.
std::string readToken() {
  std::string token = env("AOS_TOKEN", "");
  if (token.empty()) {
    std::ifstream in(env("AOS_TOKEN_FILE", ""));
    std::stringstream buffer;
    buffer << in.rdbuf();
    token = buffer.str();
  }
  while (!token.empty() && (token.back() == '\n' || token.back() == '\r' || token.back() == ' ')) token.pop_back();
  return token;
}

// "aos.<Code>: message" out of a kernel exception's description (see caps.capnp).
std::string aosError(kj::StringPtr description) {
  std::string text(description.cStr());
  auto start = text.find("aos.");
  text = start == std::string::npos ? text : text.substr(start);
  auto newline = text.find('\n');
  return newline == std::string::npos ? text : text.substr(0, newline);
}

int run(const char* address, const std::string& worldId, const std::string& schema, const std::string& json,
        const std::string& workflow) {
  const std::string token = readToken();
  if (token.empty()) {
    std::cerr << "send-event: no token: set AOS_TOKEN_FILE (e.g. DATA/admin.token) or AOS_TOKEN" << std::endl;
    return 1;
  }
  capnp::EzRpcClient client(address);
  auto& waitScope = client.getWaitScope();

  // Gateway.restore: the token becomes the capability it was saved from.
  auto restore = client.getMain<aos::rpc::Gateway>().restoreRequest();
  restore.setToken(token);
  auto restored = restore.send().wait(waitScope);
  if (restored.getInfo().getKind() != aos::rpc::CapKind::KERNEL) {
    std::cerr << "send-event: the token is not a Kernel capability" << std::endl;
    return 1;
  }
  auto kernel = restored.getCap().castAs<aos::rpc::Kernel>();

  // Kernel.worlds then Worlds.open, pipelined: one round trip for both.
  auto mint = kernel.worldsRequest();
  mint.setUniverse(env("AOS_UNIVERSE", "default"));
  auto open = mint.send().getWorlds().openRequest();
  open.setWorldId(worldId);
  auto world = open.send().getWorld();

  auto send = world.sendRequest();
  send.setEventSchema(schema);
  send.setValue(json);
  auto sent = send.send().wait(waitScope);
  auto outcome = sent.getOutcome();
  std::cout << "event journaled at seq " << sent.getSeq() << " (" << outcome.getSteps() << " step(s), "
            << outcome.getIntents() << " effect(s) started)" << std::endl;
  for (auto trap : outcome.getTraps()) {
    std::cout << "trap in " << trap.getWorkflow().cStr() << (trap.getKey().size() ? "[" : "")
              << trap.getKey().cStr() << (trap.getKey().size() ? "]" : "") << ": " << trap.getCode().cStr()
              << ": " << trap.getMessage().cStr() << std::endl;
  }

  if (!workflow.empty()) {
    auto state = world.stateRequest();
    state.setWorkflow(workflow);
    state.setKey("");
    auto read = state.send().wait(waitScope);
    std::cout << workflow << ": " << (read.getExists() ? read.getValue().cStr() : "(no state)") << std::endl;
  }

  // The records the event added, as the JSON objects World.journal returns.
  auto journal = world.journalRequest();
  journal.setFromSeq(sent.getSeq());
  journal.setLimit(16);
  for (auto record : journal.send().wait(waitScope).getRecords()) std::cout << "  " << record.cStr() << std::endl;

  bool allTrapped = outcome.getSteps() > 0 && outcome.getTraps().size() >= outcome.getSteps();
  return allTrapped ? 3 : 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 5 || argc > 6) {
    std::cerr << "usage: AOS_TOKEN_FILE=DATA/admin.token send-event ADDRESS WORLD SCHEMA JSON [WORKFLOW]"
              << std::endl;
    return 2;
  }
  int status = 1;
  KJ_IF_MAYBE(exception, kj::runCatchingExceptions([&]() {
                status = run(argv[1], argv[2], argv[3], argv[4], argc == 6 ? argv[5] : "");
              })) {
    std::cerr << "send-event: " << aosError(exception->getDescription()) << std::endl;
    return 1;
  }
  return status;
}
