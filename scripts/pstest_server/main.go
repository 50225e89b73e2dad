// Command pstest_server serves Google's in-memory Pub/Sub fake (pstest) over
// gRPC on 127.0.0.1:<port>, for tests/CI when the Java emulator is missing.
// Built by scripts/pubsub_emulator.sh in GOPATH mode against Debian's
// golang-google-cloud-dev (cloud.google.com/go v0.56).
//
// That pstest version has no NewServerWithPort and no grpc.ServerOption hook:
// pstest.NewServer() always listens on a random port. So we create it only to
// get an initialised GServer, then register that GServer on our own
// grpc.Server bound to the requested port, with interceptors that:
//   - default CreateSubscription.ack_deadline_seconds 0 -> 10 (the real
//     service's default; current clients send 0 when unset, and this pstest
//     rejects anything below 10);
//   - turn panics (calls to RPCs this pstest does not implement hit a nil
//     embedded interface) into gRPC errors instead of crashing the server.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net"

	"cloud.google.com/go/pubsub/pstest"
	pb "google.golang.org/genproto/googleapis/pubsub/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func unary(ctx context.Context, req interface{}, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (resp interface{}, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = status.Errorf(codes.Unimplemented, "pstest: %s: %v", info.FullMethod, r)
		}
	}()
	if s, ok := req.(*pb.Subscription); ok && s.AckDeadlineSeconds == 0 {
		s.AckDeadlineSeconds = 10
	}
	return h(ctx, req)
}

func stream(srv interface{}, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = status.Errorf(codes.Unimplemented, "pstest: %s: %v", info.FullMethod, r)
		}
	}()
	return h(srv, ss)
}

func main() {
	port := flag.Int("port", 8085, "TCP port on 127.0.0.1")
	flag.Parse()

	fake := pstest.NewServer() // only for its GServer; its own listener stays idle
	lis, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", *port))
	if err != nil {
		log.Fatalf("pstest_server: listen: %v", err)
	}
	gs := grpc.NewServer(grpc.UnaryInterceptor(unary), grpc.StreamInterceptor(stream))
	pb.RegisterPublisherServer(gs, &fake.GServer)
	pb.RegisterSubscriberServer(gs, &fake.GServer)
	log.Printf("pstest_server: listening on %s", lis.Addr())
	log.Fatal(gs.Serve(lis)) // blocks forever
}
