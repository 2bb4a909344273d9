# mqttd — see README.md. Every target works on a fresh clone: `make deps`
# installs the external test peers (mosquitto clients, paho-mqtt, MQTT.js).
GO        ?= go
BIN       := bin
FUZZTIME  ?= 3s
RUN_FLAGS ?= -allow-anonymous -mqtt.addr 127.0.0.1:1883 -ws.addr 127.0.0.1:8083 -tls.addr off -wss.addr off

.PHONY: all build run test unit race fuzz fuzz-short interop deps bench bench-compare lint clean kafka-up kafka-down

all: build

build:
	$(GO) build -o $(BIN)/mqttd ./cmd/mqttd
	$(GO) build -o $(BIN)/mqttbench ./cmd/mqttbench

## run: the broker on embedded defaults, loopback only, anonymous allowed (for trying it out)
run: build
	$(BIN)/mqttd $(RUN_FLAGS) $(ARGS)

## test: everything CI runs: vet, unit + integration tests with -race, short fuzzing, interop with other clients
test: deps lint race fuzz-short interop

race:
	$(GO) test -race -count=1 -timeout 10m ./...

unit:
	$(GO) test -count=1 ./...

## fuzz: every fuzz target for FUZZTIME each (make fuzz FUZZTIME=2m)
fuzz:
	scripts/fuzz.sh $(FUZZTIME)

fuzz-short:
	scripts/fuzz.sh 3s

interop: build
	scripts/interop.sh

deps:
	scripts/deps.sh

## kafka-up: Apache Kafka 4.x (KRaft, single node) on 127.0.0.1:9092, fetched with Maven (KAFKA_PORT=N for another port)
kafka-up:
	scripts/kafka.sh up

## kafka-down: stop it and remove its log dir
kafka-down:
	scripts/kafka.sh down

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./codec/ ./broker/ ./bench/

## bench-compare: mqttd vs mosquitto on this machine, writes bench/RESULTS.md (QUICK=1: smoke run)
bench-compare:
	QUICK=$(QUICK) scripts/bench-compare.sh

lint:
	@test -z "$$(gofmt -l . | grep -v node_modules)" || { gofmt -l . | grep -v node_modules; echo "gofmt: files above need formatting"; exit 1; }
	$(GO) vet ./...

clean:
	rm -rf $(BIN)
