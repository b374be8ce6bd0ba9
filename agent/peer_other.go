//go:build !linux && !darwin

package agent

// peerCred has no kernel call to make here.
func peerCred(int) (Peer, error) { return Peer{}, ErrPlatform }

func platformSupported() error { return ErrPlatform }
