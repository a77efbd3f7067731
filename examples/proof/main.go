// Command proof prints one DPoP proof (RFC 9449 §4.2), for trying a DPoP
// server with curl:
//
//	curl -H "DPoP: $(go run ./examples/proof -method POST -url http://127.0.0.1:8080/oauth2/token)" ...
//
// The proof goes to standard output and nothing else does; the key's JWK
// thumbprint (jkt) and the key file's path go to standard error. With -jkt
// only the thumbprint is printed, to standard output, for the dpop_jkt
// parameter of an authorization request (RFC 9449 §10).
//
// The private key (ECDSA P-256, so proofs are ES256) is kept in a PEM file
// created with mode 0600, so that successive proofs share one key, as a
// client's proofs must: an access token is bound to the key, and a code
// requested with dpop_jkt can only be redeemed with it. The default file is
// dpopkit/dpop-key.pem under the user's configuration directory
// (os.UserConfigDir, such as ~/.config), outside any working tree; -key
// chooses another.
package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/dpopkit/dpop"
)

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "proof:", err)
		os.Exit(2)
	}
}

func run(args []string, stdout, stderr io.Writer) error {
	fset := flag.NewFlagSet("proof", flag.ContinueOnError)
	fset.SetOutput(stderr)
	method := fset.String("method", "GET", "HTTP `method` of the request the proof is for (htm)")
	target := fset.String("url", "", "absolute `URL` of the request (htu; its query is left out)")
	token := fset.String("token", "", "access `token` the request presents: adds ath, for calls to a protected API")
	nonce := fset.String("nonce", "", "server `nonce` from a DPoP-Nonce header, for servers that require one")
	keyFile := fset.String("key", defaultKeyFile(), "`file` holding the private key (created, mode 0600, when missing)")
	jktOnly := fset.Bool("jkt", false, "print only the key's JWK thumbprint (for dpop_jkt) to standard output, and no proof")
	fset.Usage = func() {
		fmt.Fprintf(stderr, "Usage: go run ./examples/proof -method POST -url URL [-token T] [-nonce N] [-key FILE]\n")
		fmt.Fprintf(stderr, "       go run ./examples/proof -jkt [-key FILE]\n\n")
		fset.PrintDefaults()
	}
	if err := fset.Parse(args); err != nil {
		return err
	}
	if fset.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fset.Arg(0))
	}
	if *keyFile == "" {
		return errors.New("no key file: give -key (the user configuration directory is unknown)")
	}
	key, created, err := loadOrCreateKey(*keyFile)
	if err != nil {
		return err
	}
	if created {
		fmt.Fprintf(stderr, "proof: created a new key in %s\n", *keyFile)
	}
	signer, err := dpop.NewSigner(key, dpop.SignerOptions{})
	if err != nil {
		return err
	}
	if *jktOnly {
		_, err := fmt.Fprintln(stdout, signer.JKT())
		return err
	}
	if *target == "" {
		fset.Usage()
		return errors.New("-url is required")
	}
	p, err := signer.Proof(strings.ToUpper(*method), *target, dpop.ProofOptions{AccessToken: *token, Nonce: *nonce})
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "proof: key %s, jkt %s\n", *keyFile, signer.JKT())
	_, err = fmt.Fprintln(stdout, p)
	return err
}

// defaultKeyFile is dpopkit/dpop-key.pem under the user's configuration
// directory, or "" when there is none.
func defaultKeyFile() string {
	dir, err := os.UserConfigDir()
	if err != nil {
		return ""
	}
	return filepath.Join(dir, "dpopkit", "dpop-key.pem")
}

// loadOrCreateKey reads the key in path, or generates one and writes it
// there with mode 0600 (its directory 0700 when it has to be made).
func loadOrCreateKey(path string) (*ecdsa.PrivateKey, bool, error) {
	data, err := os.ReadFile(path)
	if err == nil {
		if info, err := os.Stat(path); err == nil && info.Mode().Perm()&0o077 != 0 {
			return nil, false, fmt.Errorf("%s is readable by others (mode %v): chmod 600 it", path, info.Mode().Perm())
		}
		key, err := parseKey(data)
		if err != nil {
			return nil, false, fmt.Errorf("%s: %w", path, err)
		}
		return key, false, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, false, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, false, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, false, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, false, err
	}
	// O_EXCL: if another run created the file in the meantime, use its key.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return loadOrCreateKey(path)
	}
	if err != nil {
		return nil, false, err
	}
	werr := pem.Encode(f, &pem.Block{Type: "PRIVATE KEY", Bytes: der})
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		os.Remove(path)
		return nil, false, werr
	}
	return key, true, nil
}

// parseKey reads a PEM PKCS #8 ECDSA private key.
func parseKey(data []byte) (*ecdsa.PrivateKey, error) {
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, errors.New("not a PEM \"PRIVATE KEY\" file")
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, err
	}
	ec, ok := k.(*ecdsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("the key is a %T, not an ECDSA key", k)
	}
	return ec, nil
}
