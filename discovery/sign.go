package discovery

import (
	"bytes"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"strings"
)

// Signer signs announcements.
type Signer interface {
	// Sign returns the signature text ("<scheme>:<base64>").
	Sign(msg []byte) (string, error)
}

// Verifier checks announcement signatures.
type Verifier interface {
	// Verify returns nil when sig is a valid signature of msg.
	Verify(msg []byte, sig string) error
}

const (
	schemeHMAC    = "hmac-sha256"
	schemeEd25519 = "ed25519"
)

// minHMACKey is the shortest accepted shared secret.
const minHMACKey = 16

// KeyPair is a signing key read from a file: either a shared HMAC-SHA256
// secret or an ed25519 key. It implements Signer when it holds a secret or a
// private key, and Verifier always.
type KeyPair struct {
	secret []byte
	priv   ed25519.PrivateKey
	pub    ed25519.PublicKey
}

// LoadKey reads a key file. A PEM "PRIVATE KEY" (PKCS #8 ed25519) signs and
// verifies; a PEM "PUBLIC KEY" (PKIX ed25519) only verifies; any other
// content is a shared HMAC-SHA256 secret (trailing white space removed, at
// least 16 bytes).
func LoadKey(file string) (*KeyPair, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("read key %s: %w", file, err)
	}
	if blk, _ := pem.Decode(data); blk != nil {
		switch blk.Type {
		case "PRIVATE KEY":
			k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
			if err != nil {
				return nil, fmt.Errorf("key %s: %w", file, err)
			}
			priv, ok := k.(ed25519.PrivateKey)
			if !ok {
				return nil, fmt.Errorf("key %s: expected an ed25519 private key, got %T", file, k)
			}
			return &KeyPair{priv: priv, pub: priv.Public().(ed25519.PublicKey)}, nil
		case "PUBLIC KEY":
			k, err := x509.ParsePKIXPublicKey(blk.Bytes)
			if err != nil {
				return nil, fmt.Errorf("key %s: %w", file, err)
			}
			pub, ok := k.(ed25519.PublicKey)
			if !ok {
				return nil, fmt.Errorf("key %s: expected an ed25519 public key, got %T", file, k)
			}
			return &KeyPair{pub: pub}, nil
		default:
			return nil, fmt.Errorf("key %s: unsupported PEM block %q (expected PRIVATE KEY or PUBLIC KEY)", file, blk.Type)
		}
	}
	secret := bytes.TrimRight(data, " \t\r\n")
	if len(secret) < minHMACKey {
		return nil, fmt.Errorf("key %s: a shared secret must be at least %d bytes, got %d", file, minHMACKey, len(secret))
	}
	return &KeyPair{secret: secret}, nil
}

// NewHMACKey returns a key pair for a shared secret.
func NewHMACKey(secret []byte) *KeyPair { return &KeyPair{secret: append([]byte(nil), secret...)} }

// NewEd25519Key returns a key pair for an ed25519 private key.
func NewEd25519Key(priv ed25519.PrivateKey) *KeyPair {
	return &KeyPair{priv: priv, pub: priv.Public().(ed25519.PublicKey)}
}

// CanSign reports whether the key can sign (a secret or a private key).
func (k *KeyPair) CanSign() bool { return k.secret != nil || k.priv != nil }

// Sign signs msg.
func (k *KeyPair) Sign(msg []byte) (string, error) {
	switch {
	case k.secret != nil:
		mac := hmac.New(sha256.New, k.secret)
		mac.Write(msg)
		return schemeHMAC + ":" + base64.StdEncoding.EncodeToString(mac.Sum(nil)), nil
	case k.priv != nil:
		return schemeEd25519 + ":" + base64.StdEncoding.EncodeToString(ed25519.Sign(k.priv, msg)), nil
	}
	return "", errors.New("a public key cannot sign")
}

// Verify checks sig against msg.
func (k *KeyPair) Verify(msg []byte, sig string) error {
	scheme, b64, ok := strings.Cut(sig, ":")
	if !ok {
		return errors.New("malformed signature (expected <scheme>:<base64>)")
	}
	raw, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return fmt.Errorf("malformed signature: %w", err)
	}
	switch scheme {
	case schemeHMAC:
		if k.secret == nil {
			return errors.New("hmac-sha256 signature but the key is an ed25519 key")
		}
		mac := hmac.New(sha256.New, k.secret)
		mac.Write(msg)
		if !hmac.Equal(mac.Sum(nil), raw) {
			return errors.New("invalid signature")
		}
		return nil
	case schemeEd25519:
		if k.pub == nil {
			return errors.New("ed25519 signature but the key is a shared secret")
		}
		if !ed25519.Verify(k.pub, msg, raw) {
			return errors.New("invalid signature")
		}
		return nil
	}
	return fmt.Errorf("unknown signature scheme %q", scheme)
}
