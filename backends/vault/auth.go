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

// authenticate logs in with AppRole on first use and starts the goroutine
// that keeps the token alive. With a plain token it does nothing.
func (b *Backend) authenticate(ctx context.Context) error {
	if b.approle == nil {
		return nil
	}
	b.authMu.Lock()
	defer b.authMu.Unlock()
	if b.closed {
		return errClosed
	}
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

// login performs an AppRole login; on success the API client uses the new
// token from then on.
func (b *Backend) login(ctx context.Context) (*api.Secret, error) {
	path := "auth/" + b.approleMount + "/login"
	sec, err := b.client.Auth().Login(ctx, b.approle)
	if err != nil {
		if code := statusOf(err); code == http.StatusBadRequest || code == http.StatusForbidden {
			// Vault answers a wrong, expired or used-up role_id or
			// secret_id with 400 and an invalid-credentials message.
			return nil, newError(fmt.Sprintf("vault: AppRole login at %q refused (%d): the role_id or secret_id is wrong, expired or used up: issue a new secret_id (vault write -f auth/%s/role/ROLE/secret-id)", path, code, b.approleMount), provider.ErrPermission, err)
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
// its maximum TTL, or renewal kept failing) the backend logs in again.
func (b *Backend) watch(sec *api.Secret) {
	defer b.watching.Done()
	for {
		if sec.Auth.LeaseDuration <= 0 {
			// A token without a TTL never expires: nothing to renew.
			<-b.stop
			return
		}
		loggedInAt := time.Now()
		w, err := b.client.NewLifetimeWatcher(&api.LifetimeWatcherInput{Secret: sec})
		if err != nil {
			b.logger.Error("vault: cannot watch the AppRole token; it will not be renewed", "error", err)
			<-b.stop
			return
		}
		go w.Start()
		stopped := b.renewUntilDone(w)
		w.Stop()
		if stopped {
			return
		}
		// Never log in more than once a second, whatever the TTLs say.
		if wait := time.Second - time.Since(loggedInAt); wait > 0 && !b.sleep(wait) {
			return
		}
		if sec = b.relogin(); sec == nil {
			return
		}
	}
}

// renewUntilDone relays the watcher's events to the log until the watcher
// ends (false) or Close is called (true).
func (b *Backend) renewUntilDone(w *api.LifetimeWatcher) bool {
	for {
		select {
		case <-b.stop:
			return true
		case err := <-w.DoneCh():
			if err != nil {
				b.logger.Warn("vault: AppRole token renewal failed; logging in again", "error", oneLine(err.Error()))
			} else {
				b.logger.Info("vault: AppRole token cannot be renewed further; logging in again")
			}
			return false
		case r := <-w.RenewCh():
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
		sec, err := b.login(ctx)
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
