package dpop

import (
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"math/big"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/dpopkit/dpop/internal/jose"
)

// The cost of a proof is dominated by its signature check, which depends on
// the algorithm and on the key the client chose. With DefaultAlgorithms and
// the RSA bounds of algorithm.go, no proof may cost more than
// maxDefaultCostRatio × an ES256 proof (RFC 9449 §11.6).
const maxDefaultCostRatio = 10

// rsaWorstCaseKeyPEM is a fixed RSA 4096-bit key with e = 65537, the most
// expensive RSA key the verifier accepts, kept here because generating one
// takes seconds. "TESTING KEY" stands for "PRIVATE KEY", so that the file is
// not taken for a leaked secret.
const rsaWorstCaseKeyPEM = `
-----BEGIN TESTING KEY-----
MIIJQQIBADANBgkqhkiG9w0BAQEFAASCCSswggknAgEAAoICAQC4yQqY8/5tmzFL
WvlQRdaoKHT/FeZuUf9kAgRysETVV9GwcUD6fnXGdTxDc5IeC7Pe3aAyh5QhmJSG
YKhCH9wMHHk3J9Q1cqAqGBvL/kKvlTpsm0qOWUV9wl/fSyZrzOdG0U06IVKfiPZu
CEP499VUVs+chJl6sAOwZ5H8Y65qACXxhnODH1gN3xelclIi3lWMc4VXYELuang3
Aw3+vgoqowZbZ8KTyKd5CUT1GJFnaS9dTd7I8bBON0BBSUhV/duczOrVGUHRZ2PN
2LNf1gaB/Zd/arbRNWLlKwrkXfiw78zu4tvRACu/NmhqclGXE1dkqIN51KI82MAX
rmv56JNOrJNU1waJ5sSXQMR7RlpjHdUWPiChIDrISxxqxW3IQSdsLeExJp36bvaW
Bq2dmKgtFA10YzgjsCvJKBOr+xDuRVLU5lUI6T0wp9roZrsyWNFdn+Z/BUYUziKM
2sVcY2QESSgWxMG5W6tJfytl+pyb5pDRw/zzO425qbMYWher/Nxja8xZ53ltsIj2
QaBqaNlI1PViLsD7yI4UevFKee1nXuWWZ95xDJw7UwXYa14qBzu0a5rgmouYXeK1
hEtyv8qxTL6yRVlI8ONiumnrootDi+eiPhHCR+Vb8tvm75PE8KNrNiguuRU2hQ4J
4gbOs/HsBO7ClVgzKUtf8EqjXnH0lQIDAQABAoIB/0tnK/UHUnkMCL8uDg5PA5s/
eVnnHwVA8JGw9+jU8q9lL7T977O1r/4wWLlSHWlcJknmphOvUbn2JKVn3hyLPxIf
1XtsTmvurKOlRSA44Osgp5sp58uuj7XvW0Ing8YeFvjqXVkbLaUi7EeevGcb3zFv
zX8H5gbqcOAUPr4RODY/64T1hhsW7zwnjQfIgzvJkHqkO3LjFP8iqf3IynZWuph0
kmODWEeaa+ETgquBGvj8V6nWuEAQX8XUIVsVAy+BlUnLVL8gc+jj4xYTYIyNLghd
V33nBMUjMYobfSigwlFxQAE7EWWcR6ts7NNed2zKANZSWwsJnips/xphm5vDecXl
WRlLLZ4R9hDrlU5m33lL44uDB9yasKYxJ8gMx1C9ZAutAJWzzeooqlF55J0P3WcE
8SqZGtt7AnSrBniiLl3KyG4qM8sj+CWSRdjONgD+UnNsxowsCV1ZH80eBQOzcz0j
LReRJgn/cbkLQKVdGYcG59lK8JpMVcVjmvzrjrV1lllF2dByC1/nqmGmrcY1qdZ5
wm8S3jcelQW7llUyu4EX9wHc2pEa01OkEveUHm5+qT4NOu6MgYeWzpbDKIwMRuZR
fNy7SiNy9oK6JA5GOoFq61JILPfcIqLlz2Ty7P2FrbTOP3m7Vfxm7jC7QkvtJbEL
pd7T1P57qYibVxSQqckCggEBAPAUNZlfHODWbMu4xLsaD3gup3D3DpMXzv4a+wPl
F2YVmhvmjnuP45gju94GqSPl2DpTvW6A9PIlL5Pvo6LwrrBnUe9jauIl7PXiyIjn
NP1Ms6Q3jJdDZbeyA4Z+kqJBtpHXRtVT4yz4uZhisA8j8SQ4+Jo01ePi3PCtp6rq
FQ+lnVsSRJ0YOqd6i9pa5vHrJ5R2LbMoJDpM3sZ+vmy6w7oQuRK6ZWvl7a/jk8Mn
h1mj8mbgr8BNnTjaqT4Mvt7TbXqSfjPdOganeyZzrHREsGRtg/YXglDr3S+uFgVm
an+pcnf7Fx30h34NfXns/jk0+sH8wsfOkMwHXkfl6ed+fQkCggEBAMUKHnS574WE
zmmm8i69WXIsjdoxUlR4j7BiNnOUkuDdqJjR0xdT/pkwB++YeBxqX0lvCp2UXu6p
5V/ZeR7Gttn1YajP76H45AWpYWcusPm+6iTJ4jEQgo8oqlh6oMdvS30PTx7jd9Nd
vQEDaOD6umCof1FVivLR/VgWdUKgttSutfQ7I4fQ4T1Lrc58kodzC9GLPf5m2/Zg
Xq5QmmfilhEVYhZg3tSzftGs/McpC2zcwZWkcDv7GO535tIF7kZllShOmC4ra12D
ghzS+49AuafK7WONz4AKvwKAKIBd/S8CVseQykloRIsaDaEGwOJTc+VtnEOLpZ5C
0+zLXbY+qi0CggEAHSnHTQcxwdoqQyEBvNywjl/UdTN9sL6OpW1vmoyEqCDtpIAA
ROA4vG1yz8itWS/9cTBk7Xx6xMNhoS3WCeAEyGb0nAjOngQPYdsXkxHK7Q4ZMFST
HnjQbV0RcpADjfQ/kj29XAKhsP/Rw8IRMvWhwE2vXUQXy2PuhMoDeQ6QWmM61ypD
7XVZAqkvPeoW7cIr/6vPZ1jz9aUK1r/kr96MEhkf8jd0RIQcuGYDuAwgM/JnarnW
f5yuAY8GSgRQV08FmIMdE33HI7HKkuQwSbtiVgC7q/Q1H1FXgAg8opFLVJCn2A1H
RJtErjpDSMFSLG7UGyZyHsVn73DhsggqvrUtyQKCAQAVd3jB9s/lmAZ09D9GYFKy
YbBCqUTy9v+Qk+KizPkDjqKjo5h/3iLKxbTXoaDUV7Jx6asaZ+O/1LqsqqDLfZLG
RDmTjrPozZjqFP4Lo8acLvSLdYMzHT1cI24LnbCOic2LnnNcRiPz3y6MQbbXa/mK
NlFIpy0wLziOtEOqMqA4o6AnL5o7XcJsTyZsbJ36K8qJ1cW3RbWJLg6ipx1rXABF
dDLvhTZBrhyO823GtO4Nui9NAlFH959Lu7xl/UdsW/zYG1fxD8Huujkess29Wavg
X/dk9To6FPGicBv5gEPpLzQNIfUn8jglf30kofu5rKXfxQVVRo2QpG86SR24kTMx
AoIBAQDbtGDs6N7GztxwxqtxQr5YtsVtYzMsfyxzufLi0ejDYZU9KFvx1ySl1x2B
2BVoC7Z6SKPPN5XuRm7gEeuGNlZqmha5BIJOg+wcu7vmxMCkuriSsKresqU46Lpu
itzMYLIPDI3ywPuaW8kSEhkED9j23tC9IoSDvQCHILDkkO8WoQLFcWtw1FkVzzXi
HGAG8QQVL7/nZC1YqMynGPu537B9N3He/ba/1/9afLlnwWz5JyGTKS4Ud4J+XSDX
TV1Ha8TK0FQAGeaCDQJcWn4lirDy2NAu4miyLhrC4EaDZMVbC7YEzvuiA3Vn5K6U
SEnJ0tXKKoCSKSmc0CDPArQljaGr
-----END TESTING KEY-----
`

var rsaWorstCaseKey = sync.OnceValues(func() (*rsa.PrivateKey, error) {
	block, _ := pem.Decode([]byte(strings.ReplaceAll(rsaWorstCaseKeyPEM, "TESTING KEY", "PRIVATE KEY")))
	if block == nil {
		return nil, fmt.Errorf("no PEM block")
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, err
	}
	rk, ok := k.(*rsa.PrivateKey)
	if !ok || rk.N.BitLen() != jose.MaxRSABits || rk.E != jose.RSAExponent {
		return nil, fmt.Errorf("not an RSA %d-bit key with e=%d", jose.MaxRSABits, jose.RSAExponent)
	}
	return rk, nil
})

// worstCaseKey is the most expensive key alg accepts with default options:
// RSA 4096 with e = 65537 for the RSA algorithms, and the curve an ECDSA or
// EdDSA algorithm names otherwise (P-256, P-384, P-521, Ed25519).
func worstCaseKey(t testing.TB, alg string) *testKey {
	t.Helper()
	if specOf(alg).KTY != "RSA" {
		return newTestKey(t, alg)
	}
	priv, err := rsaWorstCaseKey()
	if err != nil {
		t.Fatal(err)
	}
	return &testKey{alg: alg, priv: priv, jwk: publicJWK(priv.Public())}
}

// BenchmarkCost is a full verification (Verifier.Verify, replay cache
// included) of a fresh proof per iteration, for every default algorithm with
// the most expensive key it accepts. Compare each with BenchmarkCost/ES256
// from the same run: none may be above maxDefaultCostRatio. Building the RSA
// 4096 proofs takes about 10 ms each, outside the timer, so use a fixed
// -benchtime such as 500x.
func BenchmarkCost(b *testing.B) {
	for _, alg := range DefaultAlgorithms() {
		b.Run(alg, func(b *testing.B) { benchWorstCase(b, alg, nil) })
	}
}

// BenchmarkCostOptInES512 is the same for ES512 (P-521), which is left out
// of DefaultAlgorithms because it costs more than maxDefaultCostRatio; a
// server may still list it.
func BenchmarkCostOptInES512(b *testing.B) {
	benchWorstCase(b, ES512, []string{ES512})
}

func benchWorstCase(b *testing.B, alg string, algs []string) {
	k := worstCaseKey(b, alg)
	proofs := make([]string, b.N)
	for i := range proofs {
		proofs[i] = k.proof(b, nil)
	}
	v := newTestVerifier(b, func(o *VerifierOptions) {
		o.ReplayCache = mustMemoryCache(b, 2*b.N+4096)
		o.Algorithms = algs
	})
	b.ReportAllocs()
	benchVerify(b, v, tokenRequest(""), proofs)
}

// TestDefaultsRefuseExpensiveProofs checks the limits that bound the cost of a
// proof with default options, and that ES512 remains available on request.
func TestDefaultsRefuseExpensiveProofs(t *testing.T) {
	rsaKey := worstCaseKey(t, RS256)
	// withRSAKey is a proof by rsaKey whose jwk claims modulus n and exponent
	// e. The key is refused before the signature is looked at, so the
	// signature by the real key does not matter.
	withRSAKey := func(n *big.Int, e int64) func(t *testing.T) string {
		return func(t *testing.T) string {
			h := rsaKey.header()
			h["jwk"] = map[string]any{"kty": "RSA", "n": enc(n.Bytes()), "e": enc(big.NewInt(e).Bytes())}
			return rsaKey.sign(t, h, defaultClaims())
		}
	}
	pub := rsaKey.priv.Public().(*rsa.PublicKey)
	n8192 := new(big.Int).Lsh(pub.N, 8192-uint(pub.N.BitLen())) // 8192 bits
	n8192.SetBit(n8192, 0, 1)
	n4097 := new(big.Int).Lsh(pub.N, 1)
	n4097.SetBit(n4097, 0, 1)
	es512 := func(t *testing.T) string { return newTestKey(t, ES512).proof(t, nil) }

	tests := []struct {
		name  string
		algs  []string // nil: DefaultAlgorithms()
		proof func(t *testing.T) string
		cause error  // nil: accepted
		desc  string // of the refusal
	}{
		{"RSA 8192", nil, withRSAKey(n8192, jose.RSAExponent), ErrKey, "RSA key size not accepted"},
		{"RSA 4097", nil, withRSAKey(n4097, jose.RSAExponent), ErrKey, "RSA key size not accepted"},
		{"RSA 1024", nil, func(t *testing.T) string { return newTestKey(t, "RSA1024").proof(t, nil) }, ErrKey, "RSA key size not accepted"},
		{"RSA e=3", nil, withRSAKey(pub.N, 3), ErrKey, "RSA exponent not accepted"},
		{"RSA e=2^31-1", nil, withRSAKey(pub.N, 1<<31-1), ErrKey, "RSA exponent not accepted"},
		{"RSA e=65539", nil, withRSAKey(pub.N, 65539), ErrKey, "RSA exponent not accepted"},
		{"RSA 4096 e=65537", nil, func(t *testing.T) string { return rsaKey.proof(t, nil) }, nil, ""},
		{"RSA 8192 even when RS256 is listed", []string{RS256}, withRSAKey(n8192, jose.RSAExponent), ErrKey, "RSA key size not accepted"},
		{"ES512", nil, es512, ErrAlgorithm, "alg is not allowed"},
		{"ES512 listed explicitly", []string{ES256, ES512}, es512, nil, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := newTestVerifier(t, func(o *VerifierOptions) { o.Algorithms = tc.algs })
			p, err := v.Verify(bg, tokenRequest(tc.proof(t)))
			if tc.cause == nil {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			wantRefused(t, p, err, CodeInvalidProof, tc.cause)
			if e, ok := err.(*Error); ok && e.Description != tc.desc {
				t.Errorf("refused with %q, want %q", e.Description, tc.desc)
			}
		})
	}
	if slices.Contains(DefaultAlgorithms(), ES512) {
		t.Error("ES512 is in DefaultAlgorithms()")
	}
}
