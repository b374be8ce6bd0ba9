// Package authpb holds the protobuf messages and gRPC stubs for Momento's
// control-plane auth.Auth service (GenerateApiToken, RefreshApiToken),
// generated from auth.proto with the pinned tools in Makefile.proto.
//
// The definitions are our own, written from Momento's public wire
// definitions: same proto package, service, method names and field numbers,
// so a client built on them talks to Momento and a server built on them
// (issuers/dev) stands in for it. Do not edit the .pb.go files; edit
// auth.proto and run `make proto`.
package authpb
