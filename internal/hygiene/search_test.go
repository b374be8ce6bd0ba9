package hygiene

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSearchFindsLeaks shows that the search behind TestSecretHygiene
// fails on each kind of leak: a secret in a stream, in the command line of
// a child's child, in a stray file, a refresh token in a stream that may
// carry only the auth token, and a token file with a loose mode.
func TestSearchFindsLeaks(t *testing.T) {
	w := newWorld(t)
	auth := w.secret("auth", authToken, "HYGIENE-AUTH-SELFTEST-01")
	refresh := w.secret("refresh", refreshToken, "HYGIENE-REFRESH-SELFTEST-02")
	cmdSecret := w.secret("cmdline", otherSecret, "HYGIENE-CMDLINE-SELFTEST-03")
	fileSecret := w.secret("stray file", otherSecret, "HYGIENE-FILE-SELFTEST-04")

	ok := w.record("allowed stdout", "token "+auth)
	ok.allow(auth)
	w.record("stderr", "error: bad token "+auth)
	w.record("allowed stdout with a refresh token", auth+" "+refresh).allow(auth)
	// Only the child's command line holds the whole secret, assembled by
	// the parent shell.
	head, tail, _ := strings.Cut(cmdSecret, "CMDLINE")
	w.exec("grandchild", opts{bin: "/bin/sh"}, "-c", `X=`+head+`; (sh -c "sleep 0.3" ${X}CMDLINE`+tail+`); true`).want(t, 0)
	if err := os.WriteFile(filepath.Join(w.tmp, "stray"), []byte(fileSecret), 0o600); err != nil {
		t.Fatal(err)
	}
	loose := w.credFile(filepath.Join(w.creds, "loose.json"))
	if err := os.MkdirAll(w.creds, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(loose, []byte(auth), 0o644); err != nil {
		t.Fatal(err)
	}

	findings, _ := w.search()
	text := strings.Join(findings, "\n")
	for _, want := range []string{
		`appears in stderr`,
		`refresh token "` + refresh + `" (refresh) appears in allowed stdout with a refresh token`,
		`(cmdline) appears in /proc/PID/cmdline of grandchild`,
		`(stray file) appears in file ` + filepath.Join(w.tmp, "stray"),
		loose + ` holds a token with mode 0644`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("the search missed %q; it found:\n%s", want, text)
		}
	}
	if strings.Contains(text, "appears in allowed stdout:") {
		t.Errorf("the search flagged an allowed appearance:\n%s", text)
	}
	if len(findings) != 5 {
		t.Errorf("%d findings, want 5:\n%s", len(findings), text)
	}
}
