# mautrix-go's federation/pdu and federation/eventauth need encoding/json/v2.
export GOEXPERIMENT := jsonv2

GO ?= go
DATA ?= ./data

.PHONY: build run test vet fmt bench fuzz clean

build:
	$(GO) build -o bin/chronicle ./cmd/chronicle

run: build
	./bin/chronicle serve --data $(DATA)

test:
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 9m ./...

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./log/... ./raft/...

fuzz:
	$(GO) test -run '^$$' -fuzz FuzzRequestBodies -fuzztime 30s ./api/

fmt:
	gofmt -w $$(git ls-files '*.go')

clean:
	rm -rf bin
