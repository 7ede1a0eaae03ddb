package e2e

import (
	"net/http"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	"chronicle/api/apitest"
)

func TestRegisterAndLogin(t *testing.T) {
	t.Parallel()
	srv := apitest.Start(t, "")
	anon := anonClient(t, srv)

	t.Run("server advertises versions", func(t *testing.T) {
		v, err := anon.Versions(t.Context())
		if err != nil {
			t.Fatalf("versions: %v", err)
		}
		if !v.Contains(mautrix.SpecV111) {
			t.Fatalf("versions %v lack v1.11", v.Versions)
		}
	})

	t.Run("username availability", func(t *testing.T) {
		if _, err := anon.RegisterAvailable(t.Context(), "carol"); err != nil {
			t.Fatalf("carol should be available: %v", err)
		}
		newUser(t, srv, "carol")
		_, err := anon.RegisterAvailable(t.Context(), "carol")
		wantMatrixError(t, err, mautrix.MUserInUse, 400)
		_, err = anon.RegisterDummy(t.Context(), &mautrix.ReqRegister[any]{Username: "carol", Password: "another"})
		wantMatrixError(t, err, mautrix.MUserInUse, 400)
	})

	t.Run("invalid usernames", func(t *testing.T) {
		for _, name := range []string{"Has Space", "UPPER", "émile", "semi:colon"} {
			t.Run(name, func(t *testing.T) {
				_, err := anon.RegisterAvailable(t.Context(), name)
				wantMatrixError(t, err, mautrix.MInvalidUsername, 400)
				_, err = anon.RegisterDummy(t.Context(), &mautrix.ReqRegister[any]{Username: name, Password: "pw"})
				wantMatrixError(t, err, mautrix.MInvalidUsername, 400)
			})
		}
	})

	t.Run("login flows offer passwords", func(t *testing.T) {
		flows, err := anon.GetLoginFlows(t.Context())
		if err != nil {
			t.Fatalf("GET /login: %v", err)
		}
		if !flows.HasFlow(mautrix.AuthTypePassword) {
			t.Fatalf("flows %+v lack m.login.password", flows.Flows)
		}
	})

	newUser(t, srv, "dave")
	dave := userID("dave")

	t.Run("password login", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			body map[string]any
		}{
			{"identifier with localpart", map[string]any{
				"type": "m.login.password", "identifier": map[string]any{"type": "m.id.user", "user": "dave"}, "password": passwordOf("dave"),
			}},
			{"identifier with user ID", map[string]any{
				"type": "m.login.password", "identifier": map[string]any{"type": "m.id.user", "user": dave.String()}, "password": passwordOf("dave"),
			}},
			{"deprecated user field", map[string]any{
				"type": "m.login.password", "user": "dave", "password": passwordOf("dave"),
			}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				var resp mautrix.RespLogin
				if _, err := anon.MakeRequest(t.Context(), http.MethodPost, anon.BuildClientURL("v3", "login"), tc.body, &resp); err != nil {
					t.Fatalf("login: %v", err)
				}
				if resp.UserID != dave || resp.AccessToken == "" || resp.DeviceID == "" {
					t.Fatalf("login answered %+v", resp)
				}
				cli, err := mautrix.NewClient(srv.URL, resp.UserID, resp.AccessToken)
				if err != nil {
					t.Fatal(err)
				}
				who, err := cli.Whoami(t.Context())
				if err != nil {
					t.Fatalf("whoami: %v", err)
				}
				if who.UserID != dave || who.DeviceID != resp.DeviceID {
					t.Fatalf("whoami = %+v, want %s on device %s", who, dave, resp.DeviceID)
				}
			})
		}
	})

	t.Run("bad credentials are forbidden", func(t *testing.T) {
		for _, tc := range []struct{ name, user, password string }{
			{"wrong password", "dave", "not the password"},
			{"unknown user", "nobody", "whatever"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				_, err := anon.Login(t.Context(), &mautrix.ReqLogin{
					Type:       mautrix.AuthTypePassword,
					Identifier: mautrix.UserIdentifier{Type: mautrix.IdentifierTypeUser, User: tc.user},
					Password:   tc.password,
				})
				wantMatrixError(t, err, mautrix.MForbidden, 403)
			})
		}
	})

	t.Run("login with a chosen device ID", func(t *testing.T) {
		cli := anonClient(t, srv)
		resp, err := cli.Login(t.Context(), &mautrix.ReqLogin{
			Type:             mautrix.AuthTypePassword,
			Identifier:       mautrix.UserIdentifier{Type: mautrix.IdentifierTypeUser, User: "dave"},
			Password:         passwordOf("dave"),
			DeviceID:         "DAVES_PHONE",
			StoreCredentials: true,
		})
		if err != nil {
			t.Fatalf("login: %v", err)
		}
		if resp.DeviceID != "DAVES_PHONE" {
			t.Fatalf("login answered device %q, want DAVES_PHONE", resp.DeviceID)
		}
		who, err := cli.Whoami(t.Context())
		if err != nil {
			t.Fatalf("whoami: %v", err)
		}
		if who.UserID != dave || who.DeviceID != id.DeviceID("DAVES_PHONE") {
			t.Fatalf("whoami = %+v", who)
		}
	})

	t.Run("requests without a token are refused", func(t *testing.T) {
		_, err := anon.Whoami(t.Context())
		wantMatrixError(t, err, mautrix.MMissingToken, 401)
		unknown, err := mautrix.NewClient(srv.URL, dave, "chr_not-a-real-token")
		if err != nil {
			t.Fatal(err)
		}
		_, err = unknown.Whoami(t.Context())
		wantMatrixError(t, err, mautrix.MUnknownToken, 401)
	})

}
