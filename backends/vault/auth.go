package vault

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/credhelper/credhelper/provider"
)

// errClosed reports use of a Backend after Close.
var errClosed = errors.New("vault: the backend is closed: build a new one")

func (b *Backend) isClosed() bool {
	select {
	case <-b.stop:
		return true
	default:
		return false
	}
}

// authenticate logs in with AppRole on first use and starts the goroutine
// that keeps the token alive. With a plain token it does nothing.
func (b *Backend) authenticate(ctx context.Context) error {
	if b.approle == nil {
		return nil
	}
	if b.isClosed() {
		return errClosed
	}
	b.authMu.Lock()
	defer b.authMu.Unlock()
	if b.loggedIn {
		return nil
	}
	sec, err := b.login(ctx)
	if err != nil {
		return err
	}
	b.loggedIn = true
	b.watching.Add(1)
	go b.watch(sec)
	return nil
}

// withAuth runs op and, if Vault refused it with 403 while the backend
// logs in with AppRole, logs in again and runs op once more. A token can
// die before the lifetime watcher replaces it: Vault cuts a renewal short
// at the role's maximum TTL, and an operator may revoke it. A 403 means
// Vault did nothing, so running op again is safe.
func (b *Backend) withAuth(ctx context.Context, op func() error) error {
	if err := b.authenticate(ctx); err != nil {
		return err
	}
	used := b.client.Token()
	err := op()
	if err == nil || b.approle == nil || statusOf(err) != http.StatusForbidden {
		return err
	}
	b.logger.Info("vault: Vault refused the AppRole token (403); logging in again and retrying once")
	if rerr := b.reauthenticate(ctx, used); rerr != nil {
		b.logger.Warn("vault: AppRole login after a 403 failed", "error", rerr)
		return err
	}
	return op()
}

// reauthenticate logs in again unless another goroutine already replaced
// the token that failed, and hands the new token to the watcher.
func (b *Backend) reauthenticate(ctx context.Context, failed string) error {
	if b.isClosed() {
		return errClosed
	}
	b.authMu.Lock()
	defer b.authMu.Unlock()
	if b.client.Token() != failed {
		return nil
	}
	sec, err := b.login(ctx)
	if err != nil {
		return err
	}
	// Only holders of authMu send, and only the watcher receives, so after
	// draining the send cannot block.
	select {
	case <-b.newAuth:
	default:
	}
	b.newAuth <- sec
	return nil
}

// login performs an AppRole login; on success the API client uses the new
// token from then on. The caller holds authMu.
func (b *Backend) login(ctx context.Context) (*api.Secret, error) {
	path := "auth/" + b.approleMount + "/login"
	sec, err := b.client.Auth().Login(ctx, b.approle)
	if err != nil {
		if code := statusOf(err); code == http.StatusBadRequest || code == http.StatusForbidden {
			// Vault answers a wrong, expired or used-up role_id or
			// secret_id with 400 and an invalid-credentials message.
			return nil, provider.NewError(fmt.Sprintf("vault: AppRole login at %q refused (%d): the role_id or secret_id is wrong, expired or used up: issue a new secret_id (vault write -f auth/%s/role/ROLE/secret-id)", path, code, b.approleMount), err, provider.KindPermission)
		}
		return nil, classify(err, "log in at", path, "update")
	}
	if sec == nil || sec.Auth == nil || sec.Auth.ClientToken == "" {
		return nil, fmt.Errorf("vault: AppRole login at %q returned no token", path)
	}
	b.logger.Info("vault: logged in with AppRole", "ttl", time.Duration(sec.Auth.LeaseDuration)*time.Second, "renewable", sec.Auth.Renewable)
	return sec, nil
}

// watch keeps the AppRole token alive until Close: the API's lifetime
// watcher renews it while Vault allows, and when it stops (the token reached
// its maximum TTL, or renewal kept failing) the backend logs in again. A
// login made elsewhere (after a 403) replaces the token being watched.
func (b *Backend) watch(sec *api.Secret) {
	defer b.watching.Done()
	for {
		loggedInAt := time.Now()
		var w *api.LifetimeWatcher
		if sec.Auth.LeaseDuration > 0 { // a token without a TTL needs no renewal
			var err error
			if w, err = b.client.NewLifetimeWatcher(&api.LifetimeWatcherInput{Secret: sec}); err != nil {
				b.logger.Error("vault: cannot watch the AppRole token; it will not be renewed", "error", err)
				w = nil
			} else {
				go w.Start()
			}
		}
		next, open := b.await(w)
		if w != nil {
			w.Stop()
		}
		if !open {
			return
		}
		if next == nil {
			// Never log in more than once a second, whatever the TTLs say.
			if wait := time.Second - time.Since(loggedInAt); wait > 0 && !b.sleep(wait) {
				return
			}
			if next = b.relogin(); next == nil {
				return
			}
		}
		sec = next
	}
}

// await relays the watcher's events to the log until the watcher ends
// (nil, true), another login hands over a new token (secret, true), or
// Close is called (nil, false). A nil watcher never ends.
func (b *Backend) await(w *api.LifetimeWatcher) (*api.Secret, bool) {
	var (
		done    <-chan error
		renewed <-chan *api.RenewOutput
	)
	if w != nil {
		done, renewed = w.DoneCh(), w.RenewCh()
	}
	for {
		select {
		case <-b.stop:
			return nil, false
		case sec := <-b.newAuth:
			return sec, true
		case err := <-done:
			if err != nil {
				b.logger.Warn("vault: AppRole token renewal failed; logging in again", "error", oneLine(err.Error()))
			} else {
				b.logger.Info("vault: AppRole token cannot be renewed further; logging in again")
			}
			return nil, true
		case r := <-renewed:
			if r != nil && r.Secret != nil && r.Secret.Auth != nil {
				b.logger.Debug("vault: AppRole token renewed", "ttl", time.Duration(r.Secret.Auth.LeaseDuration)*time.Second)
			}
		}
	}
}

// relogin logs in again, retrying with backoff, until it succeeds or Close
// is called (nil).
func (b *Backend) relogin() *api.Secret {
	delay := time.Second
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		go func() {
			select {
			case <-b.stop:
				cancel()
			case <-ctx.Done():
			}
		}()
		b.authMu.Lock()
		sec, err := b.login(ctx)
		if err == nil {
			// A login after a 403 that raced this one is superseded.
			select {
			case <-b.newAuth:
			default:
			}
		}
		b.authMu.Unlock()
		cancel()
		if err == nil {
			return sec
		}
		b.logger.Warn("vault: AppRole login failed; retrying", "error", err, "in", delay)
		if !b.sleep(delay) {
			return nil
		}
		delay = min(2*delay, time.Minute)
	}
}

// sleep waits for d and reports true, or returns false early on Close.
func (b *Backend) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-b.stop:
		return false
	case <-t.C:
		return true
	}
}
