using Kraud.Domain.Access;
using Kraud.Domain.Common;
using Kraud.Domain.Tenants;

namespace Kraud.Tests.Domain;

public class AccessSpecs
{
    private static readonly DateTimeOffset Now = DateTimeOffset.UnixEpoch;
    private static readonly Guid TenantA = Guid.NewGuid(), TenantB = Guid.NewGuid();
    private static readonly Principal Operator = new("op", Role.Operator, null, "op");
    private static readonly Principal AdminA = new("a", Role.Admin, TenantA, "admin a");

    private static IssueApiToken Issue(Principal by, Role role, Guid? tenant) => new(Guid.NewGuid(), tenant, role, "ci", "hash", by, Now);

    [Fact]
    public void an_admin_issues_tokens_for_its_own_tenant_even_without_naming_it()
    {
        var issued = Assert.IsType<ApiTokenIssued>(Assert.Single(ApiTokenDecider.Decide(Issue(AdminA, Role.Member, null), ApiToken.Initial)));
        Assert.Equal(TenantA, issued.TenantId);
    }

    [Fact]
    public void an_admin_cannot_issue_tokens_for_another_tenant_or_operator_tokens()
    {
        Assert.Equal(ErrorCode.Forbidden, Assert.Throws<DomainException>(() => ApiTokenDecider.Decide(Issue(AdminA, Role.Member, TenantB), ApiToken.Initial)).Code);
        Assert.Equal(ErrorCode.Forbidden, Assert.Throws<DomainException>(() => ApiTokenDecider.Decide(Issue(AdminA, Role.Operator, null), ApiToken.Initial)).Code);
    }

    [Theory]
    [InlineData(Role.Member)]
    [InlineData(Role.Auditor)]
    public void members_and_auditors_cannot_issue_tokens(Role role) =>
        Assert.Equal(ErrorCode.Forbidden, Assert.Throws<DomainException>(() =>
            ApiTokenDecider.Decide(Issue(new Principal("x", role, TenantA, "x"), Role.Member, TenantA), ApiToken.Initial)).Code);

    [Fact]
    public void an_operator_token_belongs_to_no_tenant_and_tenant_roles_need_one()
    {
        Assert.Equal(ErrorCode.Validation, Assert.Throws<DomainException>(() => ApiTokenDecider.Decide(Issue(Operator, Role.Operator, TenantA), ApiToken.Initial)).Code);
        Assert.Equal(ErrorCode.Validation, Assert.Throws<DomainException>(() => ApiTokenDecider.Decide(Issue(Operator, Role.Admin, null), ApiToken.Initial)).Code);
        Assert.Single(ApiTokenDecider.Decide(Issue(Operator, Role.Auditor, null), ApiToken.Initial));
    }

    [Fact]
    public void an_admin_cannot_see_or_revoke_another_tenants_token()
    {
        var other = Fold.Events<ApiToken>([new ApiTokenIssued(Guid.NewGuid(), TenantB, Role.Member, "b", "h", "op", Now)]);
        Assert.Equal(ErrorCode.NotFound, Assert.Throws<DomainException>(() => ApiTokenDecider.Decide(new RevokeApiToken(other.Id, AdminA, Now), other)).Code);
    }

    [Fact]
    public void revoking_twice_records_one_revocation()
    {
        var token = Fold.Events<ApiToken>([new ApiTokenIssued(Guid.NewGuid(), TenantA, Role.Member, "m", "h", "op", Now)]);
        var events = ApiTokenDecider.Decide(new RevokeApiToken(token.Id, AdminA, Now), token);
        var revoked = events.Aggregate(token, (s, e) => s.Evolve(e));
        Assert.Empty(ApiTokenDecider.Decide(new RevokeApiToken(token.Id, AdminA, Now), revoked));
    }

    [Fact]
    public void only_operators_create_tenants_and_names_must_be_dns_labels()
    {
        Assert.Equal(ErrorCode.Forbidden, Assert.Throws<DomainException>(() => TenantDecider.Decide(new CreateTenant(Guid.NewGuid(), "acme", AdminA, Now), Tenant.Initial)).Code);
        Assert.Equal(ErrorCode.Validation, Assert.Throws<DomainException>(() => TenantDecider.Decide(new CreateTenant(Guid.NewGuid(), "Acme Corp", Operator, Now), Tenant.Initial)).Code);
        Assert.IsType<TenantCreated>(Assert.Single(TenantDecider.Decide(new CreateTenant(Guid.NewGuid(), "acme", Operator, Now), Tenant.Initial)));
    }
}
