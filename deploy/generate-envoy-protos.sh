#!/usr/bin/env bash
# Regenerates Sources/EnvoyAPI/ from proto/external/ (the subset of Envoy's API that
# bursard answers). The generated code is committed: builds and CI never run protoc.
#
# Needs protoc (Debian: protobuf-compiler) and the two plugins, built from the package versions
# Package.swift names:
#   PROTOC_GEN_SWIFT          protoc-gen-swift           (apple/swift-protobuf)
#   PROTOC_GEN_GRPC_SWIFT     protoc-gen-grpc-swift-2    (grpc/grpc-swift-protobuf)
# e.g. in a scratch package that depends on both: swift build -c release --product protoc-gen-swift
set -euo pipefail
cd "$(dirname "$0")/.."
: "${PROTOC_GEN_SWIFT:?path to protoc-gen-swift}"
: "${PROTOC_GEN_GRPC_SWIFT:?path to protoc-gen-grpc-swift-2}"
out=Sources/EnvoyAPI
include=$(dirname "$(dirname "$(command -v protoc)")")/include
rm -rf "$out"
mkdir -p "$out"
protos=$(cd proto/external && find . -name '*.proto' | sed 's|^\./||' | sort)
(cd proto/external && protoc -I . -I "$include" \
  --plugin=protoc-gen-swift="$PROTOC_GEN_SWIFT" \
  --swift_out="../../$out" --swift_opt=Visibility=Public,FileNaming=PathToUnderscores,UseAccessLevelOnImports=true \
  $protos)
(cd proto/external && protoc -I . -I "$include" \
  --plugin=protoc-gen-grpc-swift="$PROTOC_GEN_GRPC_SWIFT" \
  --grpc-swift_out="../../$out" --grpc-swift_opt=Visibility=Public,FileNaming=PathToUnderscores,Client=true,Server=true,UseAccessLevelOnImports=true \
  envoy/service/auth/v3/external_auth.proto envoy/service/ratelimit/v3/rls.proto)
echo "generated: $(ls "$out" | wc -l) files in $out"
