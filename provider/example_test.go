package provider_test

import (
	"encoding/base64"
	"errors"
	"fmt"

	"github.com/credhelper/credhelper/provider"
)

func ExampleDecodeRecord() {
	// A secret as Momento's rotation tooling writes it, plus a field
	// credhelper does not know.
	stored := []byte(`{"apiKey":"my-api-key","refreshToken":"my-refresh-token","validUntil":1767225600,"owner":"team-a"}`)

	rec, err := provider.DecodeRecord(stored)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(rec.Pair) // tokens are never printed
	owner, _ := rec.Extra("owner")
	fmt.Println("owner:", string(owner))

	// After a refresh the engine stores the next pair; unknown fields stay.
	rec.Pair.RefreshToken = "next-refresh-token"
	rec.Pair.Generation++
	out, err := rec.Encode()
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(string(out))

	_, err = provider.DecodeRecord([]byte(`{"apiKey":"my-api-key","validUntil":1767225600000}`))
	fmt.Println(errors.Is(err, provider.ErrInvalidRecord), err)
	// Output:
	// Pair{generation: 0, endpoint: "", validUntil: 2026-01-01T00:00:00Z, tokens: redacted}
	// owner: "team-a"
	// {"apiKey":"my-api-key","generation":1,"owner":"team-a","refreshToken":"next-refresh-token","validUntil":1767225600}
	// true provider: invalid record: "validUntil" 1767225600000 is not epoch seconds (milliseconds?): invalid credential record
}

func ExampleParseAuthToken() {
	b64 := base64.RawURLEncoding.EncodeToString
	jwt := b64([]byte(`{"alg":"HS256"}`)) + "." + b64([]byte(`{"sub":"svc","exp":1767225600}`)) + ".c2ln"
	v1 := base64.StdEncoding.EncodeToString([]byte(`{"api_key":"` + jwt + `","endpoint":"cell-x.example.com"}`))
	legacy := b64([]byte(`{"alg":"HS256"}`)) + "." + b64([]byte(`{"c":"cache.cell-1.example.com","cp":"control.cell-1.example.com"}`)) + ".c2ln"

	for _, tok := range []string{v1, legacy, jwt, "ya29.opaque-oauth-access-token", "a.b!.c"} {
		info, err := provider.ParseAuthToken(tok)
		if err != nil {
			fmt.Println(errors.Is(err, provider.ErrInvalidToken), err)
			continue
		}
		expires := "never"
		if !info.Expires.IsZero() {
			expires = info.Expires.UTC().Format("2006-01-02")
		}
		fmt.Printf("%s: endpoint %q, expires %s\n", info.Form, info.Endpoint, expires)
	}
	// Output:
	// v1 key: endpoint "cell-x.example.com", expires 2026-01-01
	// JWT: endpoint "cell-1.example.com", expires never
	// JWT: endpoint "", expires 2026-01-01
	// opaque token: endpoint "", expires never
	// true provider: JWT payload is not base64url: invalid auth token
}

func ExamplePair_CheckEndpoint() {
	b64 := base64.RawURLEncoding.EncodeToString
	legacy := b64([]byte(`{"alg":"HS256"}`)) + "." + b64([]byte(`{"cp":"control.cell-1.example.com"}`)) + ".c2ln"
	p := provider.Pair{AuthToken: legacy}

	fmt.Println(p.CheckEndpoint("Control.CELL-1.example.com."))
	err := p.CheckEndpoint("cell-2.example.com")
	var mismatch *provider.EndpointMismatchError
	fmt.Println(errors.As(err, &mismatch), mismatch.Have)
	// Output:
	// <nil>
	// true cell-1.example.com
}
