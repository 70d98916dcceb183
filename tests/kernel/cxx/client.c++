// A C++ client of the AOS kernel, built only from `schemas/*.capnp` and the
// stock Cap'n Proto C++ library (Debian's capnproto + libcapnp-dev, 0.9.2).
//
// It connects to a running aos-kernel, restores the admin token through the
// Gateway, stores a blob and reads it back, appends a journal record and reads
// it back, and provokes typed errors (`aos.<Code>: ...`). It prints one line
// per step on stdout and exits non-zero on the first mismatch.
//
// Usage:
//     AOS_TOKEN=aos1_... client ADDRESS [UNIVERSE [WORLD]]
// ADDRESS is "unix:/path/kernel.sock" or "HOST:PORT". The token is read from
// the environment (or from the file named by AOS_TOKEN_FILE) so it never shows
// up in argv or in the output.
//
// Built by tests/kernel/test_cxx_client.py; by hand:
//     capnp compile -I/usr/include --src-prefix=schemas -oc++:build schemas/*.capnp
//     g++ -std=c++17 -Ibuild tests/kernel/cxx/client.c++ build/*.capnp.c++ \
//         $(pkg-config --cflags --libs capnp-rpc) -pthread -o build/client

#include <capnp/ez-rpc.h>
#include <kj/exception.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "caps.capnp.h"
#include "cas.capnp.h"
#include "journal.capnp.h"
#include "kernel.capnp.h"

namespace {

// The bytes the test expects back; tests/kernel/test_cxx_client.py builds the
// same values to check them from Python.
std::vector<kj::byte> blobPayload() {
  std::string head = "blob from c++\n";
  std::vector<kj::byte> out(head.begin(), head.end());
  for (int i = 0; i < 256; ++i) out.push_back(static_cast<kj::byte>(i));  // every byte value, NUL included
  return out;
}

std::vector<kj::byte> recordPayload() {
  std::string text = "record from c++";
  std::vector<kj::byte> out(text.begin(), text.end());
  out.push_back(0);
  out.push_back(0xff);
  return out;
}

capnp::Data::Reader asData(const std::vector<kj::byte>& bytes) {
  return capnp::Data::Reader(bytes.data(), bytes.size());
}

bool sameBytes(capnp::Data::Reader got, const std::vector<kj::byte>& want) {
  return got.size() == want.size() && (want.empty() || std::memcmp(got.begin(), want.data(), want.size()) == 0);
}

[[noreturn]] void fail(const std::string& what) {
  std::cout << "FAIL " << what << std::endl;
  std::exit(1);
}

void check(bool ok, const std::string& what) {
  if (!ok) fail(what);
}

// The AOS error code of a kernel exception: the text after "aos." up to the
// next ": " (see the ERRORS section of caps.capnp); "" when there is none.
std::string aosCode(kj::StringPtr description) {
  std::string text(description.cStr());
  auto start = text.find("aos.");
  if (start == std::string::npos) return "";
  start += 4;
  auto end = text.find(": ", start);
  if (end == std::string::npos) return "";
  return text.substr(start, end - start);
}

// Run `call`, which must throw a Cap'n Proto `failed` exception carrying
// `aos.<code>`; print it and fail otherwise.
template <typename Call>
void expectError(const std::string& step, const std::string& code, Call&& call) {
  KJ_IF_MAYBE(exception, kj::runCatchingExceptions(kj::fwd<Call>(call))) {
    std::string got = aosCode(exception->getDescription());
    check(exception->getType() == kj::Exception::Type::FAILED,
          step + ": exception type is not FAILED: " + exception->getDescription().cStr());
    check(got == code, step + ": expected aos." + code + ", got: " + exception->getDescription().cStr());
    std::cout << "error " << step << " aos." << got << std::endl;
    std::string detail(exception->getDescription().cStr());
    while (!detail.empty() && detail.back() == '\n') detail.pop_back();
    std::cerr << step << ": " << detail << std::endl;
  } else {
    fail(step + ": expected aos." + code + ", but the call succeeded");
  }
}

std::string readToken() {
  if (const char* token = std::getenv("AOS_TOKEN")) {
    if (*token) return token;
  }
  if (const char* path = std::getenv("AOS_TOKEN_FILE")) {
    std::ifstream in(path);
    std::stringstream buffer;
    buffer << in.rdbuf();
    std::string token = buffer.str();
    while (!token.empty() && (token.back() == '\n' || token.back() == '\r' || token.back() == ' ')) token.pop_back();
    if (!token.empty()) return token;
  }
  std::cerr << "no token: set AOS_TOKEN or AOS_TOKEN_FILE" << std::endl;
  std::exit(2);
}

int run(const char* address, const std::string& universe, const std::string& world) {
  const std::string token = readToken();

  capnp::EzRpcClient client(address);
  auto& waitScope = client.getWaitScope();
  auto gateway = client.getMain<aos::rpc::Gateway>();

  // Gateway.restore: exchange the admin token for the Kernel capability.
  auto restore = gateway.restoreRequest();
  restore.setToken(token);
  auto restored = restore.send().wait(waitScope);
  auto info = restored.getInfo();
  check(info.getKind() == aos::rpc::CapKind::KERNEL, "restore: the admin token is not a kernel capability");
  std::cout << "restored kind=kernel grant=" << info.getGrantId().cStr() << std::endl;
  auto kernel = restored.getCap().castAs<aos::rpc::Kernel>();

  auto status = kernel.statusRequest().send().wait(waitScope).getStatus();
  std::cout << "kernel version=" << status.getVersion().cStr()
            << " maxMessageBytes=" << status.getLimits().getMaxMessageBytes() << std::endl;

  // CAS: put a blob, read it back three ways.
  const auto blob = blobPayload();
  auto mintCas = kernel.casRequest();
  mintCas.setUniverse(universe);
  auto cas = mintCas.send().getCas();  // promise pipelining: no round trip for the mint

  auto put = cas.putRequest();
  put.setData(asData(blob));
  std::string hash = put.send().wait(waitScope).getHash().cStr();
  check(hash.rfind("sha256:", 0) == 0 && hash.size() == 7 + 64, "put: bad address " + hash);
  std::cout << "cas put " << hash << " size=" << blob.size() << std::endl;

  auto has = cas.hasRequest();
  has.setHash(hash);
  check(has.send().wait(waitScope).getPresent(), "has: blob not present after put");

  auto stat = cas.statRequest();
  stat.setHash(hash);
  auto size = stat.send().wait(waitScope).getSize();
  check(size == blob.size(), "stat: size " + std::to_string(size) + " != " + std::to_string(blob.size()));

  auto get = cas.getRequest();
  get.setHash(hash);
  auto got = get.send().wait(waitScope);
  check(sameBytes(got.getData(), blob), "get: bytes differ from what was put");
  std::cout << "cas get ok size=" << got.getData().size() << std::endl;

  // Journal: append one record to a new world, read it back.
  const auto record = recordPayload();
  auto mintJournal = kernel.journalRequest();
  mintJournal.setUniverse(universe);
  auto journal = mintJournal.send().getJournal();

  auto append = journal.appendRequest();
  append.setWorld(world);
  append.setExpectedSeq(0);
  append.setEpoch(1);
  append.initRecords(1).set(0, asData(record));
  auto seq = append.send().wait(waitScope).getSeq();
  check(seq == 0, "append: seq " + std::to_string(seq) + " != 0");
  std::cout << "journal append world=" << world << " seq=" << seq << std::endl;

  auto read = journal.readRequest();
  read.setWorld(world);
  read.setFromSeq(0);
  read.setLimit(0);
  auto readBack = read.send().wait(waitScope);
  auto records = readBack.getRecords();
  check(records.size() == 1, "read: " + std::to_string(records.size()) + " records, expected 1");
  check(sameBytes(records[0], record), "read: record bytes differ from what was appended");
  check(readBack.getNextSeq() == 1, "read: nextSeq " + std::to_string(readBack.getNextSeq()) + " != 1");
  std::cout << "journal read ok records=" << records.size() << " nextSeq=" << readBack.getNextSeq() << std::endl;

  auto headRequest = journal.headRequest();
  headRequest.setWorld(world);
  auto head = headRequest.send().wait(waitScope);
  check(head.getNextSeq() == 1 && head.getEpoch() == 1,
        "head: (" + std::to_string(head.getNextSeq()) + ", " + std::to_string(head.getEpoch()) + ") != (1, 1)");

  // Typed errors travel as `failed` exceptions whose description holds aos.<Code>.
  expectError("append-wrong-seq", "SeqConflict", [&]() {
    auto again = journal.appendRequest();
    again.setWorld(world);
    again.setExpectedSeq(0);  // the world's next sequence number is 1
    again.setEpoch(1);
    again.initRecords(1).set(0, asData(record));
    again.send().wait(waitScope);
  });
  auto after = journal.headRequest();
  after.setWorld(world);
  check(after.send().wait(waitScope).getNextSeq() == 1, "append-wrong-seq: the refused append wrote something");

  expectError("get-missing-blob", "BlobNotFound", [&]() {
    auto missing = cas.getRequest();
    missing.setHash("sha256:" + std::string(64, '0'));
    missing.send().wait(waitScope);
  });

  expectError("restore-unknown-token", "InvalidToken", [&]() {
    auto bogus = gateway.restoreRequest();
    bogus.setToken("aos1_" + std::string(43, 'A'));
    bogus.send().wait(waitScope);
  });

  std::cout << "OK" << std::endl;
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || argc > 4) {
    std::cerr << "usage: AOS_TOKEN=... " << argv[0] << " ADDRESS [UNIVERSE [WORLD]]" << std::endl;
    return 2;
  }
  const std::string universe = argc > 2 ? argv[2] : "cxx";
  const std::string world = argc > 3 ? argv[3] : "w1";
  int code = 0;
  KJ_IF_MAYBE(exception, kj::runCatchingExceptions([&]() { code = run(argv[1], universe, world); })) {
    std::cout << "ERROR " << exception->getDescription().cStr() << std::endl;
    return 3;
  }
  return code;
}
