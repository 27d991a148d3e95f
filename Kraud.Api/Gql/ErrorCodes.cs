using GraphQL;
using Kraud.Api.Common;
using Kraud.Domain.Common;

namespace Kraud.Api.Gql;

/// <summary>Refusals and version races become contract errors with a code a client can act on.</summary>
public static class ErrorCodes
{
    public static ExecutionError? Map(Exception exception) => exception switch
    {
        DomainException d => new ExecutionError(d.Message, d) { Code = d.ContractCode },
        JasperFx.DocumentAlreadyExistsException => new ExecutionError("A resource with that name or id exists already.", exception) { Code = "CONFLICT" },
        JasperFx.Events.ExistingStreamIdCollisionException or Marten.Exceptions.ExistingStreamIdCollisionException => new ExecutionError("A resource with that id exists already.", exception) { Code = "CONFLICT" },
        // A lost race between two appends to one stream (the database's unique key on stream and version).
        JasperFx.ConcurrencyException or JasperFx.Events.EventStreamUnexpectedMaxEventIdException => new ExecutionError("Someone changed this resource at the same time: reload it and try again.", exception)
        { Code = "CONFLICT" },
        var e when Streams.IsLockCircle(e) => new ExecutionError("Another change to the same hosts ran at the same time: try again.", exception) { Code = "CONFLICT" },
        // One transaction that inserts several name claims (a product and its pods) fails with all the duplicates at once.
        AggregateException a => a.InnerExceptions.Select(Map).FirstOrDefault(e => e is not null),
        _ => null,
    };
}
